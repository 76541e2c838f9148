// XSalsa20 with the part of the `xsalsa20` package's API that @libp2p/pnet uses: xsalsa20(nonce,
// key) gives a cipher whose update(input[, output]) XORs the next bytes of the keystream into input.
// physarum's pnet runs it instead (patches/@libp2p+pnet+*.patch): its WebAssembly core
// (scripts/xsalsa20-wasm.mjs) computes four blocks at a time in 128-bit SIMD lanes, ~1 GB/s
// here against ~300 MB/s. HSalsa20, once per cipher, is plain JavaScript. All ciphers share
// one WebAssembly memory: a call copies its data in, XORs it in place, and copies it out.
'use strict'

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] // "expand 32-byte k"
const STATE = 0 // 16 words of the cipher being run
const DATA = 256 // the data, in place
const GROUP = 256 // bytes per step of the core: four 64-byte blocks

let core // the WebAssembly instance's exports, made on first use
let bytes // views of its memory, made again when the memory grows
let words32

/** The core, with memory for at least `size` bytes of data. */
function coreFor(size) {
  if (core === undefined)
    core = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(require('./wasm.js'), 'base64'))).exports
  const need = DATA + size
  if (core.memory.buffer.byteLength < need) core.memory.grow(Math.ceil((need - core.memory.buffer.byteLength) / 65536))
  if (bytes === undefined || bytes.buffer !== core.memory.buffer) {
    bytes = new Uint8Array(core.memory.buffer)
    words32 = new Uint32Array(core.memory.buffer, STATE, 16)
  }
  return core
}

function rotl(v, n) {
  return (v << n) | (v >>> (32 - n))
}

function words(bytes, offset, n) {
  const out = new Array(n)
  for (let i = 0; i < n; i++)
    out[i] =
      (bytes[offset + 4 * i] |
        (bytes[offset + 4 * i + 1] << 8) |
        (bytes[offset + 4 * i + 2] << 16) |
        (bytes[offset + 4 * i + 3] << 24)) >>>
      0
  return out
}

/** HSalsa20: the subkey of XSalsa20 from the key and the first 16 bytes of the nonce. */
function hsalsa20(key, nonce) {
  const k = words(key, 0, 8)
  const n = words(nonce, 0, 4)
  const x = [
    SIGMA[0],
    k[0],
    k[1],
    k[2],
    k[3],
    SIGMA[1],
    n[0],
    n[1],
    n[2],
    n[3],
    SIGMA[2],
    k[4],
    k[5],
    k[6],
    k[7],
    SIGMA[3]
  ]
  const qr = (a, b, c, d) => {
    x[b] ^= rotl((x[a] + x[d]) | 0, 7)
    x[c] ^= rotl((x[b] + x[a]) | 0, 9)
    x[d] ^= rotl((x[c] + x[b]) | 0, 13)
    x[a] ^= rotl((x[d] + x[c]) | 0, 18)
  }
  for (let r = 0; r < 10; r++) {
    qr(0, 4, 8, 12)
    qr(5, 9, 13, 1)
    qr(10, 14, 2, 6)
    qr(15, 3, 7, 11)
    qr(0, 1, 2, 3)
    qr(5, 6, 7, 4)
    qr(10, 11, 8, 9)
    qr(15, 12, 13, 14)
  }
  return [x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9]]
}

class XSalsa20 {
  constructor(nonce, key) {
    if (nonce == null || nonce.length !== 24) throw new Error('nonce must be 24 bytes')
    if (key == null || key.length !== 32) throw new Error('key must be 32 bytes')
    const s = hsalsa20(key, nonce)
    const n = words(nonce, 16, 2)
    this.state = Uint32Array.of(
      SIGMA[0],
      s[0],
      s[1],
      s[2],
      s[3],
      SIGMA[1],
      n[0],
      n[1],
      0,
      0,
      SIGMA[2],
      s[4],
      s[5],
      s[6],
      s[7],
      SIGMA[3]
    )
    // Keystream left over from the last group of a call that ended inside it.
    this.left = new Uint8Array(GROUP)
    this.leftAt = GROUP
  }

  update(input, output) {
    if (output == null) output = new Uint8Array(input.length)
    const len = input.length
    let i = 0
    while (i < len && this.leftAt < GROUP) {
      output[i] = input[i] ^ this.left[this.leftAt++]
      i++
    }
    if (i === len) return output
    const whole = len - i - ((len - i) % GROUP)
    const c = coreFor(Math.max(whole, GROUP))
    words32.set(this.state)
    if (whole > 0) {
      bytes.set(input.subarray(i, i + whole), DATA)
      c.xor4(DATA, whole / GROUP, STATE)
      output.set(bytes.subarray(DATA, DATA + whole), i)
      i += whole
    }
    if (i < len) {
      // The tail: one more group of keystream, kept for the next call.
      bytes.fill(0, DATA, DATA + GROUP)
      c.xor4(DATA, 1, STATE)
      this.left.set(bytes.subarray(DATA, DATA + GROUP))
      this.leftAt = 0
      while (i < len) {
        output[i] = input[i] ^ this.left[this.leftAt++]
        i++
      }
    }
    // The core advanced the block counter (words 8 and 9).
    this.state[8] = words32[8]
    this.state[9] = words32[9]
    return output
  }
}

module.exports = function xsalsa20(nonce, key) {
  return new XSalsa20(nonce, key)
}
