// physarum's XSalsa20 (packages/xsalsa20-simd), which the private network's pnet layer runs
// (patches/@libp2p+pnet+*.patch): the same keystream, byte for byte, as the xsalsa20 package
// that go-libp2p interoperates with, whatever the chunking; and its WebAssembly is what the
// generator makes. 200 MB through a PSK connection: test/integration/pnet.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { randomBytes, randomInt } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Cipher = (nonce: Uint8Array, key: Uint8Array) => { update: (input: Uint8Array, output?: Uint8Array) => Uint8Array }
const require = createRequire(import.meta.url)
const mine = require('physarum-xsalsa20') as Cipher
const reference = require('xsalsa20') as Cipher

test('the same keystream as the xsalsa20 package, over random keys, nonces and chunkings', () => {
  for (let c = 0; c < 100; c++) {
    const key = randomBytes(32)
    const nonce = randomBytes(24)
    const a = mine(nonce, key)
    const b = reference(nonce, key)
    // Empty, inside one 256-byte group, across groups, and beyond the WebAssembly memory's first page.
    for (const size of [0, 1, 255, 256, 257, randomInt(0, 600), randomInt(0, 70000), 200000]) {
      const input = randomBytes(size)
      const want = Buffer.alloc(size)
      b.update(input, want)
      assert.deepEqual(Buffer.from(a.update(input)), want, `cipher ${c}, ${size} bytes`)
    }
  }
})

test('into a given output, and two ciphers interleaved share nothing', () => {
  const [k1, k2, n1, n2] = [randomBytes(32), randomBytes(32), randomBytes(24), randomBytes(24)]
  const [a1, a2, b1, b2] = [mine(n1, k1), mine(n2, k2), reference(n1, k1), reference(n2, k2)]
  for (let i = 0; i < 50; i++) {
    const input = randomBytes(randomInt(0, 5000))
    const [out1, out2, want1, want2] = [0, 0, 0, 0].map(() => Buffer.alloc(input.length))
    a1.update(input, out1)
    a2.update(input, out2)
    b1.update(input, want1)
    b2.update(input, want2)
    assert.deepEqual(out1, want1)
    assert.deepEqual(out2, want2)
  }
})

test('a bad nonce or key is refused', () => {
  assert.throws(() => mine(new Uint8Array(23), new Uint8Array(32)), /nonce must be 24 bytes/)
  assert.throws(() => mine(new Uint8Array(24), new Uint8Array(31)), /key must be 32 bytes/)
})

test('packages/xsalsa20-simd/wasm.js is what scripts/xsalsa20-wasm.mjs generates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-xsalsa20-'))
  try {
    execFileSync(process.execPath, ['scripts/xsalsa20-wasm.mjs', join(dir, 'wasm.js')], { stdio: 'ignore' })
    assert.equal(readFileSync(join(dir, 'wasm.js'), 'utf8'), readFileSync('packages/xsalsa20-simd/wasm.js', 'utf8'))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
