// The SWIM wire protocol against a real node: a malformed frame (not JSON, a wrong
// message, a length over the limit) resets its stream, and the node keeps running and
// probing; a well-formed ping from a stranger is answered with an ack.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startAgent, addrOf, waitFor, statusOf } from '../helpers/cluster.js'
import { createNode, type PhysarumNode } from '../../src/cluster/node.js'
import { ephemeralKey } from '../../src/cluster/identity.js'
import { pskHex, swarmKey } from '../../src/config/psk.js'
import { SWIM_PROTOCOL, decodeCoordinate, decodeSwim, encodeSwim } from '../../src/cluster/membership/swim-protocol.js'
import { multiaddr } from '@multiformats/multiaddr'
import type { Agent } from '../../src/cluster/agent.js'

const PSK = 'd'.repeat(64)
let a: Agent
let b: Agent
let raw: PhysarumNode

before(async () => {
  a = await startAgent({ config: { Psk: PSK } })
  b = await startAgent({ config: { Psk: PSK, Bootstraps: [addrOf(a)] } })
  raw = await createNode({
    privateKey: await ephemeralKey(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    psk: swarmKey(pskHex(PSK))
  })
  await raw.start()
  await raw.dial(multiaddr(addrOf(a)))
  await waitFor('a and b see each other', () => statusOf(a, b) === 'alive' && statusOf(b, a) === 'alive', 15000)
})

after(async () => {
  await raw?.stop()
  await b?.stop()
  await a?.stop()
})

function framed(body: Uint8Array, len = body.byteLength): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength)
  new DataView(out.buffer).setUint32(0, len)
  out.set(body, 4)
  return out
}

/** Sends one frame on a fresh SWIM stream to a; resolves with what came back, or how the stream ended. */
async function exchange(
  frame: Uint8Array,
  waitMs = 3000
): Promise<{ ended: 'reset' | 'closed' | 'timeout'; data: Uint8Array[] }> {
  const stream = await raw.dialProtocol(a.node.peerId, SWIM_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  stream.send(frame)
  const data: Uint8Array[] = []
  const timer = setTimeout(() => {
    stream.abort(new Error('test timeout'))
  }, waitMs)
  try {
    for await (const chunk of stream) data.push(chunk.subarray())
    return { ended: 'closed', data }
  } catch (err) {
    return { ended: (err as Error).message === 'test timeout' ? 'timeout' : 'reset', data }
  } finally {
    clearTimeout(timer)
  }
}

test('malformed SWIM frames reset their stream; the node keeps running and probing', async () => {
  const bad = [
    framed(new TextEncoder().encode('not json')),
    framed(new TextEncoder().encode(JSON.stringify({ v: 1, t: 'ping' }))),
    framed(new TextEncoder().encode(JSON.stringify({ v: 2, t: 'gossip', updates: [] }))),
    // A compact coordinate that is not base64, and a push-pull digest that is not one.
    framed(new TextEncoder().encode(JSON.stringify({ v: 1, t: 'ack', seq: 1, co: '<script>alert(1)</script>==' }))),
    framed(new TextEncoder().encode(JSON.stringify({ v: 1, t: 'sync', reply: true, digest: 'zz', members: [] }))),
    framed(new Uint8Array(8), 64 * 1024 * 1024)
  ]
  for (const f of bad) {
    const r = await exchange(f)
    assert.notEqual(r.ended, 'timeout', 'the stream ended')
    assert.equal(r.data.length, 0, 'nothing answered')
  }
  // Still a member in good standing: b keeps seeing a alive, a keeps probing b.
  const before = a.rtt.get(b.peer)?.measuredAt ?? 0
  await waitFor('a probed b since', () => (a.rtt.get(b.peer)?.measuredAt ?? 0) > before, 10000)
  assert.equal(statusOf(b, a), 'alive')
})

test('a well-formed ping is answered with an ack carrying the coordinate', async () => {
  // A stranger's ping: an ack, and a push-pull to learn who it is (the stream stays open: read for a second).
  const r = await exchange(framed(encodeSwim({ v: 1, t: 'ping', seq: 7 })), 1000)
  let all = Buffer.concat(r.data)
  const kinds: string[] = []
  let ack: { seq: number; co?: string } | undefined
  while (all.byteLength >= 4) {
    const len = all.readUInt32BE(0)
    const res = decodeSwim(all.subarray(4, 4 + len))
    assert.ok(res.ok, 'every frame valid')
    kinds.push(res.message.t)
    if (res.message.t === 'ack') ack = res.message
    all = all.subarray(4 + len)
  }
  assert.ok(kinds.includes('sync'), `a push-pull to the stranger: ${kinds.join(',')}`)
  assert.equal(ack?.seq, 7, `an ack of the ping: ${kinds.join(',')}`)
  assert.ok(ack?.co !== undefined, 'with the coordinate')
  const coord = decodeCoordinate(ack.co)
  assert.equal(coord?.vec.length, 8, `a coordinate of 8 dimensions: ${ack.co}`)
})

test('a ping with a well-formed but meaningless compact coordinate (NaN, a negative height) is answered, not taken', async () => {
  const nan = Buffer.from(new Float32Array([NaN, 0, -1, 1, 2, 3, 4, 5, 6, 7, 8]).buffer).toString('base64')
  const r = await exchange(framed(encodeSwim({ v: 1, t: 'ping', seq: 9, co: nan })), 1000)
  assert.ok(r.data.length > 0, 'answered')
  assert.equal(decodeCoordinate(nan), undefined)
  assert.equal(a.membership.swim.get(raw.peerId.toString())?.coord, undefined, 'no coordinate kept for it')
})
