// Vivaldi coordinates (src/cluster/coordinate/): converging on a synthetic latency matrix,
// and refusing samples and coordinates that would poison them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CoordinateClient, CoordinateError, estimateRttMs, newCoordinate } from '../../src/cluster/coordinate/index.js'

/** A seeded PRNG (mulberry32): the test is the same every run. */
function rng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('coordinates converge on a synthetic latency matrix: median error ≤ 10 %, 90th percentile ≤ 25 %', () => {
  const random = rng(42)
  const n = 40
  // Hosts in a plane 100 ms across, each with its own access link of 0.5–5 ms, plus ±2 % jitter per sample.
  const pos = Array.from({ length: n }, () => [random() * 100, random() * 100])
  const access = Array.from({ length: n }, () => 0.5 + random() * 4.5)
  const rtt = (i: number, j: number): number =>
    Math.hypot(pos[i][0] - pos[j][0], pos[i][1] - pos[j][1]) + access[i] + access[j]
  const clients = Array.from({ length: n }, () => new CoordinateClient({}, random))
  // One probe per node per round to a random peer, as the failure detector does: 300 rounds.
  for (let round = 0; round < 300; round++) {
    for (let i = 0; i < n; i++) {
      let j = Math.floor(random() * (n - 1))
      if (j >= i) j++
      const sample = rtt(i, j) * (1 + (random() - 0.5) * 0.04)
      clients[i].update(String(j), clients[j].coordinate, sample)
    }
  }
  const errors: number[] = []
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const est = estimateRttMs(clients[i].coordinate, clients[j].coordinate)
      errors.push(Math.abs(est - rtt(i, j)) / rtt(i, j))
    }
  errors.sort((a, b) => a - b)
  const median = errors[errors.length >> 1]
  const p90 = errors[Math.floor(errors.length * 0.9)]
  assert.ok(median <= 0.1, `median relative error ${(median * 100).toFixed(1)} %`)
  assert.ok(p90 <= 0.25, `90th percentile relative error ${(p90 * 100).toFixed(1)} %`)
  // The ranking is what placement uses: from node 0, the nearest by estimate is among the 3 truly nearest.
  const byTruth = [...Array(n).keys()].filter(j => j !== 0).sort((a, b) => rtt(0, a) - rtt(0, b))
  const byEstimate = [...byTruth].sort(
    (a, b) => clients[0].estimateTo(clients[a].coordinate) - clients[0].estimateTo(clients[b].coordinate)
  )
  assert.ok(byTruth.slice(0, 3).includes(byEstimate[0]), 'the estimated nearest is truly near')
})

test('errors shrink from the maximum as samples agree', () => {
  const a = new CoordinateClient({}, rng(1))
  const b = new CoordinateClient({}, rng(2))
  assert.equal(a.coordinate.error, 1.5)
  for (let i = 0; i < 50; i++) {
    a.update('b', b.coordinate, 10)
    b.update('a', a.coordinate, 10)
  }
  assert.ok(a.coordinate.error < 0.5, `error ${a.coordinate.error}`)
  assert.ok(Math.abs(a.estimateTo(b.coordinate) - 10) < 1, `estimate ${a.estimateTo(b.coordinate)} ms for 10 ms`)
})

test('a bad sample or a bad coordinate from a peer is refused and changes nothing', () => {
  const c = new CoordinateClient()
  const before = c.coordinate
  const good = newCoordinate(c.config)
  assert.throws(() => c.update('p', good, -1), CoordinateError)
  assert.throws(() => c.update('p', good, 20000), CoordinateError)
  assert.throws(() => c.update('p', { ...good, vec: [1, 2] }, 5), CoordinateError)
  assert.throws(() => c.update('p', { ...good, height: NaN }, 5), CoordinateError)
  assert.deepEqual(c.coordinate, before)
})
