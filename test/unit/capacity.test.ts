// The allocator's capacity decision alone (src/allocator/instances/capacity.ts): slots,
// the app's own limit and the memory budget, with stopping instances counted as the
// runtime still holds them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { refusal, usage, type Counted } from '../../src/allocator/instances/capacity.js'

const web = { name: 'web', maxInstances: 2, memoryMB: 128 }
const inst = (app: string, state: Counted['state'], running = true, memoryMB = 128): Counted => ({
  app,
  state,
  memoryMB,
  running
})

test('usage counts starting and ready instances as slots, and memory until the runtime lets go', () => {
  const u = usage(
    [
      inst('web', 'ready'),
      inst('web', 'starting'),
      inst('api', 'ready', true, 256),
      inst('web', 'stopping', true),
      inst('web', 'stopping', false)
    ],
    'web'
  )
  assert.deepEqual(u, { slots: 3, ofApp: 2, memoryMB: 128 * 3 + 256 })
})

test('one more instance: refused for slots, for the app limit, for memory; allowed otherwise', () => {
  const limits = { maxInstances: 3, memoryMB: 1024 }
  assert.equal(refusal(usage([], 'web'), limits, web), undefined)
  assert.match(
    refusal(usage([inst('a', 'ready'), inst('b', 'ready'), inst('c', 'starting')], 'web'), limits, web) ?? '',
    /all 3 instance slots/
  )
  assert.match(
    refusal(usage([inst('web', 'ready'), inst('web', 'starting')], 'web'), limits, web) ?? '',
    /web already has its maximum of 2/
  )
  assert.match(
    refusal(usage([inst('big', 'ready', true, 960)], 'web'), limits, web) ?? '',
    /not enough memory budget left for web \(128 MB needed, 64 MB free\)/
  )
  // A stopping instance frees its slot at once, its memory only once it is gone.
  assert.equal(refusal(usage([inst('web', 'stopping', true), inst('web', 'ready')], 'web'), limits, web), undefined)
  assert.match(refusal(usage([inst('big', 'stopping', true, 960)], 'web'), limits, web) ?? '', /memory/)
  assert.equal(refusal(usage([inst('big', 'stopping', false, 960)], 'web'), limits, web), undefined)
})
