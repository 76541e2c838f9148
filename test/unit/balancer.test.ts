// The proxy's balancer: a request that ends without a verdict (client gone, host no
// longer has the instance) frees its slot but neither makes the endpoint look fast nor
// forgives its failures.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Balancer } from '../../src/proxy/balancer.js'

test('cancel frees the in-flight slot and leaves latency and failure count alone', () => {
  const b = new Balancer()
  const now = Date.now()
  b.start('x')
  b.finish('x', 200, true, now)
  const slow = b.cost('x', 1, now)
  b.start('x'); b.finish('x', 0, false, now)
  b.start('x'); b.finish('x', 0, false, now)
  b.start('x')
  b.cancel('x')
  assert.equal(b.inFlight('x'), 0)
  assert.equal(b.cost('x', 1, now), slow, 'a cancelled request is not a 0 ms success')
  b.start('x')
  assert.equal(b.finish('x', 0, false, now), true, 'the third failure still ejects: cancel forgave nothing')
})
