// The allocators' scale decisions (src/allocator/instances/scale.ts) and the last-writer-wins
// scale table (src/scale/table.ts), alone.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { mayCull, overMax, scaleRefusal, toStart } from '../../src/allocator/instances/scale.js'
import { ScaleTable } from '../../src/scale/table.js'

const dir = mkdtempSync(join(tmpdir(), 'physarum-scale-unit-'))
after(() => {
  rmSync(dir, { recursive: true, force: true })
})

test('the deficit is dealt out the same way on every allocator: fewest first, ties by peer ID', () => {
  const holders = [
    { peer: 'a', count: 0 },
    { peer: 'b', count: 0 }
  ]
  // min 2 from nothing: one each, and both allocators reach the same answer.
  assert.equal(toStart({ min: 2 }, holders, 'a', 0), 1)
  assert.equal(toStart({ min: 2 }, holders, 'b', 0), 1)
  // min 3: the tie goes to the smaller peer ID.
  assert.equal(toStart({ min: 3 }, holders, 'a', 0), 2)
  assert.equal(toStart({ min: 3 }, holders, 'b', 0), 1)
  // b already has two: a starts the one missing.
  const uneven = [
    { peer: 'a', count: 0 },
    { peer: 'b', count: 2 }
  ]
  assert.equal(toStart({ min: 3 }, uneven, 'a', 2), 1)
  assert.equal(toStart({ min: 3 }, uneven, 'b', 2), 0)
  // Registered instances elsewhere count towards the total; the maximum bounds the start; not a holder: nothing.
  assert.equal(toStart({ min: 2 }, holders, 'a', 2), 0)
  assert.equal(toStart({ min: 4, max: 1 }, holders, 'a', 0), 1)
  assert.equal(toStart({ min: 2 }, holders, 'z', 0), 0)
})

test('culling keeps the cluster minimum; the maximum refuses a start and culls above it', () => {
  assert.equal(mayCull(undefined, 1), true)
  assert.equal(mayCull({ min: 2 }, 2), false)
  assert.equal(mayCull({ min: 2 }, 3), true)
  assert.equal(mayCull({ min: 0 }, 1), true)
  assert.equal(overMax({ min: 0, max: 2 }, 3), true)
  assert.equal(overMax({ min: 0, max: 2 }, 2), false)
  assert.equal(overMax({ min: 2 }, 100), false)
  assert.equal(scaleRefusal('x', { min: 0, max: 2 }, 1), undefined)
  assert.match(scaleRefusal('x', { min: 0, max: 2 }, 2) ?? '', /cluster maximum of 2/)
})

test('the scale table: the later version wins, a tie goes to the larger peer, and it is kept in its file', () => {
  const file = join(dir, 'scale.json')
  const a = new ScaleTable({ self: 'peerA', file })
  const r1 = a.set('hello', 2, 4)
  a.merge({ hello: { min: 9, version: r1.version - 1, by: 'peerZ' } })
  assert.equal(a.get('hello')?.min, 2, 'an older record does not replace a newer one')
  a.merge({ hello: { min: 3, version: r1.version, by: 'peerB' } })
  assert.equal(a.get('hello')?.min, 3, 'a tie goes to the larger peer ID')
  const r2 = a.set('hello', 0)
  assert.ok(r2.version > r1.version, 'a new setting is newer than what it replaces')
  assert.deepEqual(new ScaleTable({ self: 'peerA', file }).get('hello'), r2, 'kept across a restart')
})
