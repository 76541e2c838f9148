// What the proxy keeps per instance (a connection pool each, over a real node) is dropped
// once no member announces the instance: instances come and go for good (idle culls,
// scale-outs), and a long-lived proxy must not keep them all. The balancer's figures,
// pure logic, are swept in test/unit/balancer.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ForwardClient } from '../../src/forward/client.js'
import { startAgent } from '../helpers/cluster.js'

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
    assert.equal(
      forward.pool(peer, { v: 1, app: 'a', instance: 'i1' }),
      kept,
      'the pool of an instance still announced is the same'
    )
  } finally {
    await forward.stop()
    await agent.stop()
  }
})
