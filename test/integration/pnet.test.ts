// The pnet/xsalsa20 fix (patches/xsalsa20+*.patch): before it, every connection shared
// one WASM memory that grew until Memory.grow() threw at ~100 MB. 200 MB must pass
// through a PSK connection intact, with two connections active at once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { startAgent, addrOf, waitFor } from '../helpers/cluster.js'
import type { Agent } from '../../src/cluster/agent.js'

const MB = 1024 * 1024

async function transfer(
  from: Agent,
  to: Agent,
  bytes: number
): Promise<{ sent: string; received: string; got: number }> {
  const proto = `/physarum-test/sink/${Math.random().toString(36).slice(2)}`
  const hashIn = createHash('sha256')
  let got = 0
  const done = new Promise<void>((resolve, reject) => {
    void to.node.handle(proto, async stream => {
      try {
        for await (const c of stream) {
          got += c.byteLength
          hashIn.update(c.subarray())
        }
        resolve()
      } catch (err) {
        reject(err as Error)
      }
    })
  })
  const stream = await from.node.dialProtocol(to.node.peerId, proto)
  const hashOut = createHash('sha256')
  const chunk = randomBytes(64 * 1024)
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    chunk.writeUInt32BE(sent / chunk.byteLength, 0)
    const copy = Uint8Array.from(chunk)
    hashOut.update(copy)
    if (!stream.send(copy)) await stream.onDrain()
  }
  await stream.close()
  await done
  return { sent: hashOut.digest('hex'), received: hashIn.digest('hex'), got }
}

test('200 MB through a PSK connection arrive intact', { timeout: 180000 }, async () => {
  const psk = 'd'.repeat(64)
  const a = await startAgent({ config: { Psk: psk } })
  const b = await startAgent({ config: { Psk: psk, Bootstraps: [addrOf(a)] } })
  const c = await startAgent({ config: { Psk: psk, Bootstraps: [addrOf(a)] } })
  try {
    await waitFor('connected', () => a.membership.members().length === 2)
    // Two transfers at once: several pnet ciphers share the WASM memory, which is what broke.
    const [r1, r2] = await Promise.all([transfer(a, b, 200 * MB), transfer(c, a, 40 * MB)])
    assert.equal(r1.got, 200 * MB)
    assert.equal(r1.received, r1.sent)
    assert.equal(r2.got, 40 * MB)
    assert.equal(r2.received, r2.sent)
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()])
  }
})
