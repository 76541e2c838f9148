// The @libp2p/tcp patch (patches/@libp2p+tcp+*.patch): what the streams of a connection
// send in one event-loop turn reaches the kernel in one system call (the socket is corked
// until setImmediate), not in one write(2) per frame. A proxy under load answers many
// requests per turn on one connection; each write costs 40–90 µs on a small VM.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import { quietPair, waitFor } from './helpers/cluster.js'

const PROTO = '/physarum-test/echo/1'

test('frames of many streams sent in one turn leave in one system call', async () => {
  const [a, b] = await quietPair('5'.repeat(64))
  try {
    const received: number[] = []
    await b.node.handle(PROTO, async (stream) => { for await (const c of stream) received.push(c.byteLength) }, { maxInboundStreams: 64 })
    const streams = await Promise.all(Array.from({ length: 32 }, async () => await a.node.dialProtocol(b.node.peerId, PROTO, { maxOutboundStreams: 64 })))
    // Let stream opening settle (its frames are not what is counted).
    await new Promise(resolve => setTimeout(resolve, 200))
    // _writeGeneric is where a net.Socket hands one write or one writev to libuv: one system call.
    const proto = Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown }
    const original = proto._writeGeneric
    let syscalls = 0
    proto._writeGeneric = function (this: Socket, ...args: unknown[]) { syscalls++; return original.apply(this, args) }
    try {
      for (const s of streams) s.send(new Uint8Array(100))
      await waitFor('all frames received', () => received.length >= 32)
    } finally {
      proto._writeGeneric = original
    }
    // 32 frames: 32 system calls without the patch; one (plus stray traffic) with it.
    assert.ok(syscalls <= 4, `${syscalls} system calls for 32 frames sent in one turn`)
    for (const s of streams) await s.close()
  } finally {
    await a.stop({ leave: false })
    await b.stop({ leave: false })
  }
})
