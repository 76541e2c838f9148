// The proxy's balancer: a request that ends without a verdict (client gone, host no
// longer has the instance) frees its slot but neither makes the endpoint look fast nor
// forgives its failures; the figures of instances no member announces are swept.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Balancer } from '../../src/proxy/balancer.js'
import { EJECT_AFTER } from '../../src/proxy/constants.js'

test('cancel frees the in-flight slot and leaves latency and failure count alone', () => {
  const b = new Balancer()
  const now = Date.now()
  b.start('x')
  b.finish('x', 200, true, now)
  const slow = b.cost('x', 1, now)
  b.start('x')
  b.finish('x', 0, false, now)
  b.start('x')
  b.finish('x', 0, false, now)
  b.start('x')
  b.cancel('x')
  assert.equal(b.inFlight('x'), 0)
  assert.equal(b.cost('x', 1, now), slow, 'a cancelled request is not a 0 ms success')
  b.start('x')
  assert.equal(b.finish('x', 0, false, now), true, 'the third failure still ejects: cancel forgave nothing')
})

test('sweep drops the figures of instances that are gone, but not of one with a request in flight', () => {
  const b = new Balancer()
  const now = Date.now()
  // Each served one request in 500 ms (a failure would not charge its latency); 'kept' then fails until ejected.
  for (const k of ['gone', 'busy', 'kept']) {
    b.start(k)
    b.finish(k, 500, true, now)
  }
  for (let i = 0; i < EJECT_AFTER; i++) {
    b.start('kept')
    b.finish('kept', 0, false, now)
  }
  assert.equal(b.ejected('kept', now), true)
  assert.equal(b.cost('gone', 1, now), 500, 'before the sweep, gone is charged its 500 ms')
  b.start('busy')
  b.sweep(k => k === 'kept')
  assert.equal(b.inFlight('busy'), 1, 'a request in flight keeps its slot')
  assert.equal(b.cost('busy', 1, now), 1000, 'and its figures: 500 ms × (1 in flight + 1)')
  assert.equal(b.ejected('kept', now), true, 'an instance still announced keeps its ejection')
  // 'gone' starts afresh: the 500 ms it was charged no longer counts.
  assert.equal(b.cost('gone', 1, now), 1)
})
