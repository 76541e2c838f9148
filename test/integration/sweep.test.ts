// What the proxy keeps per instance (balancing figures, a connection pool each) is dropped
// once no member announces the instance: instances come and go for good (idle culls,
// scale-outs), and a long-lived proxy must not keep them all.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Balancer } from '../../src/proxy/balancer.js'
import { ForwardClient } from '../../src/forward/client.js'
import { startAgent } from '../helpers/cluster.js'

test('sweep drops the figures of instances that are gone, but not of one with a request in flight', () => {
  const b = new Balancer()
  const now = Date.now()
  for (const k of ['gone', 'busy', 'kept']) { b.start(k); b.finish(k, 500, false, now) }
  for (let i = 0; i < 3; i++) { b.start('kept'); b.finish('kept', 0, false, now) }
  assert.equal(b.ejected('kept', now), true)
  b.start('busy')
  b.sweep(k => k === 'kept')
  assert.equal(b.inFlight('busy'), 1, 'a request in flight keeps its slot')
  assert.equal(b.ejected('kept', now), true, 'an instance still announced keeps its ejection')
  // 'gone' starts afresh: the 500 ms it was charged no longer counts.
  assert.equal(b.cost('gone', 1, now), 1)
})

test('sweep closes the pools of instances that are gone and keeps the others', async () => {
  const agent = await startAgent({ role: 'proxy' })
  const forward = new ForwardClient(agent.node)
  try {
    const peer = agent.peer
    const kept = forward.pool(peer, { v: 1, app: 'a', instance: 'i1' })
    forward.pool(peer, { v: 1, app: 'a', instance: 'i2' })
    forward.pool(peer, { v: 1, app: 'b', instance: 'i3' })
    assert.equal(forward.size, 3)
    forward.sweep(k => k === `${peer}/a/i1`)
    assert.equal(forward.size, 1)
    assert.equal(forward.pool(peer, { v: 1, app: 'a', instance: 'i1' }), kept, 'the pool of an instance still announced is the same')
  } finally {
    await forward.close()
    await agent.stop()
  }
})
