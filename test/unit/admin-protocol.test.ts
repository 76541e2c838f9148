// The admin protocol's pure parts: its bounded length prefix and its request schema.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Uint8ArrayList } from 'uint8arraylist'
import { InvalidDataLengthLengthError } from '@libp2p/utils'
import { boundedLengthDecoder, validateAdminRequest } from '../../src/cluster/admin/protocol.js'

test('boundedLengthDecoder: a varint as lpStream reads it; unfinished → RangeError (read on); too long → refused', () => {
  assert.equal(boundedLengthDecoder(new Uint8ArrayList(Uint8Array.of(5))), 5)
  assert.equal(boundedLengthDecoder(new Uint8ArrayList(Uint8Array.of(0xac, 0x02))), 300)
  assert.throws(() => boundedLengthDecoder(new Uint8ArrayList(Uint8Array.of(0xff))), RangeError)
  // 256 KB needs 3 bytes: a fourth byte with the continuation bit still set is not a length of ours.
  assert.throws(
    () => boundedLengthDecoder(new Uint8ArrayList(Uint8Array.of(0xff, 0xff, 0xff, 0xff))),
    InvalidDataLengthLengthError
  )
})

test('admin requests: drain and undo only, no extra keys, a bounded deadline', () => {
  assert.ok(validateAdminRequest({ v: 1, id: 'a', op: 'drain', deadlineS: 30 }))
  assert.ok(validateAdminRequest({ v: 1, id: 'a', op: 'undo' }))
  for (const bad of [
    { v: 2, id: 'a', op: 'drain' },
    { v: 1, id: '', op: 'drain' },
    { v: 1, id: 'a', op: 'scale' },
    { v: 1, id: 'a', op: 'drain', deadlineS: -1 },
    { v: 1, id: 'a', op: 'drain', force: true },
    [1]
  ])
    assert.equal(validateAdminRequest(bad), false, JSON.stringify(bad))
})
