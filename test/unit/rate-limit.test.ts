// The allocator's per-peer rate limiter stays bounded without letting a peer with many
// identities reset another peer's limit.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateLimiter } from '../../src/allocation/server.js'

test('10,000 other peer IDs do not reset a limited peer that keeps asking', () => {
  const r = new RateLimiter(1, 2)
  const now = 1_000_000
  assert.equal(r.take('a', now), true)
  assert.equal(r.take('a', now), true)
  assert.equal(r.take('a', now), false, 'burst spent')
  for (let i = 0; i < 5000; i++) r.take(`sybil-${i}`, now)
  assert.equal(r.take('a', now), false, 'still limited')
  for (let i = 5000; i < 10001; i++) r.take(`sybil-${i}`, now)
  assert.equal(r.take('a', now), false, 'still limited after the table overflowed')
})
