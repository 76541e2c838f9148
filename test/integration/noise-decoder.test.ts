// The @libp2p/utils patch (patches/@libp2p+utils+*.patch): the length-prefixed decoder
// that noise reads its frames with stops at an empty buffer instead of asking the length
// decoder, which threw (and the decoder caught) a RangeError, stack trace and all, for
// every chunk a connection received.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { withQuietPair } from '../helpers/cluster.js'

test('receiving a noise frame throws no RangeError', async () => {
  await withQuietPair('3'.repeat(64), async (a, b) => {
    for (let i = 0; i < 20; i++) await a.rtt.probe(b.node.peerId)
    // Count RangeErrors made while probes go back and forth; `instanceof RangeError` still holds.
    const Original = globalThis.RangeError
    let made = 0
    const Counting = function (this: unknown, ...args: unknown[]) {
      made++
      return Reflect.construct(Original, args, new.target ?? Original)
    } as unknown as { prototype: RangeError }
    Counting.prototype = Original.prototype
    globalThis.RangeError = Counting as unknown as RangeErrorConstructor
    try {
      for (let i = 0; i < 200; i++) await a.rtt.probe(b.node.peerId)
    } finally {
      globalThis.RangeError = Original
    }
    // Without the patch: one per received chunk, 400 for 200 round trips.
    assert.ok(made < 20, `${made} RangeErrors for 200 round trips`)
  })
})
