// Local health (src/cluster/membership/health.ts): a node's own lag and refuted suspicions stretch
// its failure-detector timeouts, and they shrink back as it recovers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LocalHealth } from '../../src/cluster/membership/health.js'

test('a healthy node keeps its timeouts: small lag costs nothing', () => {
  const h = new LocalHealth({ lagUnitMs: 100 })
  for (let t = 0; t <= 5000; t += 100) h.sample(t, 30)
  assert.equal(h.score, 0)
  assert.equal(h.multiplier, 1)
})

test('event-loop lag raises the multiplier in proportion, up to 9×, and it halves back with the half-life', () => {
  const h = new LocalHealth({ lagUnitMs: 100, lagHalfLifeMs: 2000 })
  h.sample(0, 0)
  h.sample(100, 350)
  assert.equal(h.multiplier, 4, '350 ms late → 3 points')
  h.sample(200, 5000)
  assert.equal(h.multiplier, 9, 'capped at 1 + 8')
  // The worst lag is remembered, halving every 2 s without new lag.
  let t = 200
  for (; t <= 200 + 2000; t += 100) h.sample(t, 0)
  assert.ok(h.lag > 2400 && h.lag < 2600, `about half of 5,000 ms after one half-life: ${h.lag}`)
  for (; t <= 200 + 12000; t += 100) h.sample(t, 0)
  assert.equal(h.multiplier, 1, 'recovered 12 s after the last lag')
})

test('a refuted suspicion of itself adds a point per burst of notices, forgiven over time', () => {
  const h = new LocalHealth({ lagUnitMs: 100, refuteDecayMs: 2000 })
  h.sample(0, 0)
  h.refuted(1000)
  h.refuted(1100) // the other members' notices of the same suspicion
  h.refuted(1200)
  assert.equal(h.multiplier, 2)
  h.refuted(1700)
  assert.equal(h.multiplier, 3, 'a new suspicion, later')
  for (let t = 1800; t <= 7000; t += 100) h.sample(t, 0)
  assert.equal(h.multiplier, 1, 'each point forgiven after 2 s')
})
