// The yamux patch (patches/@chainsafe+libp2p-yamux+*.patch): a window update only once
// half of the receive window is used, as Go's yamux does. Without it every small
// message was followed by a window-update frame, doubling the socket writes of each
// request/response exchange. Large transfers (pnet.test, scale.test) show flow control
// still works.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import { quietPair } from './helpers/cluster.js'

test('a small request/response costs one socket write per side', async () => {
  const [a, b] = await quietPair('7'.repeat(64))
  try {
    for (let i = 0; i < 20; i++) await a.rtt.probe(b.node.peerId)
    const original = Socket.prototype.write
    let writes = 0
    Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) { writes++; return original.apply(this, args) } as Socket['write']
    try {
      for (let i = 0; i < 200; i++) await a.rtt.probe(b.node.peerId)
    } finally {
      Socket.prototype.write = original
    }
    // One write for the probe, one for the echo; a little slack for stray traffic.
    assert.ok(writes / 200 < 2.5, `${(writes / 200).toFixed(2)} socket writes per round trip`)
  } finally {
    await a.stop({ leave: false })
    await b.stop({ leave: false })
  }
})
