// The registration state machine (src/registry/state.ts): checks, TTL, what is announced.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { afterCheck, announced, initialState, lapsed, refreshed } from '../../src/registry/state.js'

test('a registration is announced once its check passes, not before', () => {
  const s = initialState(0)
  assert.equal(s.health, 'pending')
  assert.equal(announced(s, 0), false)
  assert.equal(announced(afterCheck(s, true, 3), 0), true)
  // A pending one that fails stays unannounced, and turns critical at the threshold.
  assert.equal(afterCheck(afterCheck(s, false, 2), false, 2).health, 'critical')
})

test('threshold failures in a row withdraw it; one pass brings it back', () => {
  let s = afterCheck(initialState(0), true, 3)
  s = afterCheck(s, false, 3)
  s = afterCheck(s, false, 3)
  assert.equal(announced(s, 0), true, 'two failures of three: still announced')
  s = afterCheck(s, false, 3)
  assert.equal(s.health, 'critical')
  assert.equal(announced(s, 0), false)
  s = afterCheck(s, true, 3)
  assert.equal(announced(s, 0), true)
  assert.equal(s.failures, 0)
})

test('a TTL lapses unless refreshed; no TTL never lapses', () => {
  const s = afterCheck(initialState(1000, 3000), true, 3)
  assert.equal(lapsed(s, 3999), false)
  assert.equal(lapsed(s, 4000), true)
  assert.equal(announced(s, 4000), false, 'a lapsed one is not announced, even while passing')
  const r = refreshed(s, 3500, 3000)
  assert.equal(lapsed(r, 6000), false)
  assert.equal(lapsed(r, 6500), true)
  const forever = afterCheck(initialState(0), true, 3)
  assert.equal(lapsed(forever, Number.MAX_SAFE_INTEGER), false)
  assert.equal(refreshed(forever, 10, undefined), forever)
})
