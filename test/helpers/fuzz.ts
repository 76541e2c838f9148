// A seeded fuzzer for the hostile-input suites: a small PRNG, byte-level mutations and
// structure-aware hostile JSON, and a runner that feeds cases to a target with bounded
// concurrency. Every case is derived from (seed, index) alone, so a failure is replayed
// with PHYSARUM_FUZZ_SEED=<seed> and the case number; the seed is printed at start.
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'

/** mulberry32: tiny, fast and good enough to drive mutations. */
export class Rng {
  private s: number
  constructor(seed: number) {
    this.s = seed >>> 0
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
  /** A size skewed towards small values, sometimes up to `max`. */
  size(max: number): number {
    return this.chance(0.7) ? this.int(Math.min(max, 16) + 1) : this.int(max + 1)
  }
}

/** The seed of this run: PHYSARUM_FUZZ_SEED to replay one, else a fresh one. */
export function fuzzSeed(): number {
  const env = process.env.PHYSARUM_FUZZ_SEED
  return env !== undefined && env !== '' ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0
}

/** The generator of case `index`: independent of the order in which cases run. */
export function caseRng(seed: number, index: number): Rng {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0)
}

const enc = new TextEncoder()
export const utf8 = (s: string): Uint8Array => enc.encode(s)

/**
 * Byte sequences that are not valid UTF-8: a lone continuation, an overlong form, a surrogate, past U+10FFFF, a cut-off
 * sequence.
 */
export const INVALID_UTF8 = [
  [0x80],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xff],
  [0xc3, 0x28]
].map(a => Uint8Array.from(a))

const INTERESTING = [
  '{',
  '}',
  '[',
  ']',
  '"',
  '\\',
  ':',
  ',',
  '\0',
  '\r\n',
  '\\u0000',
  '\\ud800',
  'null',
  '-0',
  '1e309',
  '9007199254740993',
  '%',
  '%00',
  '..',
  '/',
  '\n'
]

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

/**
 * One to four byte-level mutations of `input`: flips, random bytes, insertions, deletions, truncation, duplication,
 * invalid UTF-8.
 */
export function mutateBytes(rng: Rng, input: Uint8Array, maxLen = 1 << 16): Uint8Array {
  let b: Uint8Array = Uint8Array.from(input)
  const rounds = 1 + rng.int(4)
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.byteLength + 1)
    switch (rng.int(9)) {
      case 0:
        if (b.byteLength > 0) {
          const i = rng.int(b.byteLength)
          b[i] ^= 1 << rng.int(8)
        }
        break
      case 1:
        if (b.byteLength > 0) {
          b[rng.int(b.byteLength)] = rng.int(256)
        }
        break
      case 2:
        b = concat([b.subarray(0, at), rng.bytes(1 + rng.size(64)), b.subarray(at)])
        break
      case 3:
        b = concat([b.subarray(0, at), b.subarray(Math.min(b.byteLength, at + 1 + rng.size(64)))])
        break
      case 4:
        b = b.subarray(0, at)
        break
      case 5: {
        const len = 1 + rng.size(256)
        const chunk = b.subarray(at, at + len)
        const times = 1 + rng.size(64)
        b = concat([b.subarray(0, at), ...Array.from({ length: times }, () => chunk), b.subarray(at)])
        break
      }
      case 6:
        b = concat([b.subarray(0, at), rng.pick(INVALID_UTF8), b.subarray(at)])
        break
      case 7:
        b = concat([b.subarray(0, at), utf8(rng.pick(INTERESTING)), b.subarray(at)])
        break
      default:
        if (b.byteLength > 1) {
          const i = rng.int(b.byteLength)
          const j = rng.int(b.byteLength)
          const t = b[i]
          b[i] = b[j]
          b[j] = t
        }
        break
    }
  }
  return b.byteLength > maxLen ? b.subarray(0, maxLen) : b
}

/** A random JSON value of any type, nested up to `depth`. */
export function randomValue(rng: Rng, depth = 3): unknown {
  switch (rng.int(depth > 0 ? 9 : 7)) {
    case 0:
      return null
    case 1:
      return rng.chance(0.5)
    case 2:
      return rng.pick([0, -1, 1, 1.5, -0, 1e308, -1e308, 2 ** 53 + 1, 4294967296, rng.int(1e9)])
    case 3:
      return 'x'.repeat(rng.size(300))
    case 4:
      return String.fromCharCode(...Array.from({ length: rng.size(20) }, () => rng.int(0x10000)))
    case 5:
      return rng.pick([
        '',
        '..',
        '../etc/passwd',
        '/',
        'hello',
        '\r\n',
        '%2e%2e',
        'a\u0000b',
        '\ud800',
        '__proto__',
        'constructor'
      ])
    case 6:
      return rng.pick(['[]', '{}', 'true']).length
    case 7:
      return Array.from({ length: rng.size(8) }, () => randomValue(rng, depth - 1))
    default:
      return Object.fromEntries(
        Array.from({ length: rng.size(6) }, () => [
          rng.pick(['a', 'v', 'id', 'app', '__proto__', 'Image', 'x'.repeat(rng.size(40))]),
          randomValue(rng, depth - 1)
        ])
      )
  }
}

/** `[[[[…]]]]` or `{"a":{"a":…}}` nested `depth` deep. */
export function deepNest(depth: number, objects: boolean): string {
  return objects ? '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) : '['.repeat(depth) + ']'.repeat(depth)
}

/**
 * A hostile variant of a valid message: a field dropped, given a wrong type or a huge
 * or odd value, extra fields (`extraKeys` first), deep nesting, a huge string,
 * duplicate keys; the JSON text then sometimes mutated at the byte level too.
 */
export function hostileJson(
  rng: Rng,
  template: Record<string, unknown>,
  extraKeys: string[] = [],
  maxLen = 1 << 16
): Uint8Array {
  const msg: Record<string, unknown> = structuredClone(template)
  const keys = Object.keys(msg)
  const ops = 1 + rng.int(3)
  let text: string | undefined
  for (let i = 0; i < ops; i++) {
    switch (rng.int(9)) {
      case 0:
        delete msg[rng.pick(keys)]
        break
      case 1:
        msg[rng.pick(keys)] = randomValue(rng)
        break
      case 2:
        msg[rng.pick([...extraKeys, ...keys, 'extra'])] = randomValue(rng)
        break
      case 3:
        msg[rng.pick(keys)] = 'x'.repeat(rng.pick([1000, 5000, 20000, 70000]))
        break
      case 4:
        msg[rng.pick(keys)] = JSON.parse(deepNest(rng.pick([10, 100, 1000]), rng.chance(0.5)))
        break
      case 5:
        text = deepNest(rng.pick([100, 1000, 10000, 30000]), rng.chance(0.5))
        break
      case 6:
        text = JSON.stringify(randomValue(rng, 4))
        break
      case 7: {
        const k = rng.pick(keys)
        text = JSON.stringify(msg).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(randomValue(rng, 1))},`)
        break
      }
      default:
        msg[rng.pick(keys)] = rng.pick([null, true, [], {}, -1, Number.MAX_VALUE, '', 'x'.repeat(200)])
        break
    }
  }
  let bytes = utf8(text ?? JSON.stringify(msg))
  if (rng.chance(0.3)) bytes = mutateBytes(rng, bytes, maxLen)
  return bytes.byteLength > maxLen && rng.chance(0.8) ? bytes.subarray(0, maxLen) : bytes
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
export function procMemory(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

export interface FuzzReport {
  tried: number
  ms: number
  outcomes: Record<string, number>
  failures: Array<{ index: number; detail: string }>
}

/**
 * Runs `count` cases through `run` with `concurrency` in flight. `run` returns an
 * outcome label (counted) or throws: a throw is a failure, recorded with its case index.
 * Stops early after `maxFailures` failures.
 */
export async function fuzz(opts: {
  seed: number
  count: number
  concurrency: number
  maxFailures?: number
  run: (rng: Rng, index: number) => Promise<string>
}): Promise<FuzzReport> {
  const report: FuzzReport = { tried: 0, ms: 0, outcomes: {}, failures: [] }
  const t0 = Date.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < opts.count && report.failures.length < (opts.maxFailures ?? 5)) {
      const index = next++
      try {
        const o = await opts.run(caseRng(opts.seed, index), index)
        report.outcomes[o] = (report.outcomes[o] ?? 0) + 1
      } catch (err) {
        report.failures.push({ index, detail: err instanceof Error ? err.message : String(err) })
      }
      report.tried++
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  report.ms = Date.now() - t0
  return report
}

export function describeReport(name: string, seed: number, r: FuzzReport): string {
  const outcomes = Object.entries(r.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  return `# ${name}: ${r.tried} inputs in ${(r.ms / 1000).toFixed(1)} s (${Math.round(r.tried / (r.ms / 1000))}/s), seed ${seed}; ${outcomes}${r.failures.length > 0 ? `; FAILURES at cases ${r.failures.map(f => f.index).join(', ')}: ${r.failures[0].detail}` : ''}`
}

// --- HTTP/1.1 requests ------------------------------------------------------------------

export const STREAM_CORPUS = [
  'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'HEAD /healthz HTTP/1.0\r\n\r\n',
  'GET /hello HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n',
  'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n',
  'PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
  'GET /redirect HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\nTE: trailers\r\n\r\n'
]

export const ENTRY_CORPUS = [
  'GET /hello/hello HTTP/1.1\r\nHost: p\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: p\r\nAccept: application/json\r\n\r\n',
  'GET /_physarum/health HTTP/1.1\r\nHost: p\r\n\r\n',
  'POST /hello/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\nabc',
  'POST /hello/echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'GET /no-such-app/x HTTP/1.1\r\nHost: p\r\n\r\n',
  'GET /hello/../../etc/passwd HTTP/1.1\r\nHost: p\r\n\r\n',
  'GET /%2e%2e/hello/hello HTTP/1.1\r\nHost: p\r\n\r\n',
  'GET /hello?x=%zz HTTP/1.1\r\nHost: p\r\n\r\n',
  'DELETE /hello/echo HTTP/1.1\r\nHost: p\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n'
]

const METHODS = [
  'GET',
  'POST',
  'HEAD',
  'PUT',
  'DELETE',
  'OPTIONS',
  'PATCH',
  'TRACE',
  'CONNECT',
  'PRI',
  'get',
  'G ET',
  '',
  'X'.repeat(100),
  'GET\u0000'
]
const TARGETS = [
  '/',
  '/hello/hello',
  '/hello',
  '/hello/',
  '/hello?x',
  '/_physarum',
  '/_physarum/',
  '/_physarum/members',
  '/_physarum/metrics',
  '/_physarum/nope',
  '/../hello/hello',
  '/%2e%2e/hello',
  '/.%2e/hello',
  '/hello/../../x',
  '/hello/%2e%2e%2f',
  '/%zz/x',
  '/hello/%zz',
  '/%',
  '/%%',
  '/hello/%',
  '/HELLO/hello',
  '/hel%0d%0alo/x',
  '/hello%0aX-Injected:%201/',
  '/%00',
  '/\u00e9t\u00e9/x',
  '/a'.repeat(2000),
  '/' + 'x'.repeat(64) + '/y',
  '*',
  'http://127.0.0.1/hello/hello',
  '//hello/hello',
  '',
  '/hello/hello#frag',
  '/?' + 'q'.repeat(10000),
  '/hello/' + '%41'.repeat(5000)
]
const VERSIONS = [
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/9.9',
  'HTTP/1.1 ',
  'http/1.1',
  'HTTP/1',
  '',
  'HTTP/1.1\u0000'
]

/**
 * A request line and headers from hostile parts: odd methods, targets and versions; huge, many, duplicate or malformed
 * headers.
 */
export function generatedRequest(rng: Rng): Uint8Array {
  const line = rng.chance(0.1)
    ? Buffer.from(rng.bytes(rng.size(200))).toString('latin1')
    : `${rng.chance(0.6) ? 'GET' : rng.pick(METHODS)}${rng.chance(0.9) ? ' ' : rng.pick(['  ', '\t', ''])}${rng.pick(TARGETS)}${rng.chance(0.9) ? ' ' : rng.pick(['  ', '\t'])}${rng.chance(0.7) ? 'HTTP/1.1' : rng.pick(VERSIONS)}`
  const headers: string[] = []
  if (rng.chance(0.9)) headers.push('Host: p')
  switch (rng.int(12)) {
    case 0:
      headers.push(`X-Big: ${'a'.repeat(rng.pick([1000, 30000, 40000, 70000]))}`)
      break
    case 1:
      for (let i = 0; i < rng.pick([100, 1000, 3000]); i++) headers.push(`X-H${i}: ${i}`)
      break
    case 2:
      headers.push('Content-Length: 3', 'Content-Length: 5')
      break
    case 3:
      headers.push('Content-Length: 3', 'Transfer-Encoding: chunked')
      break
    case 4:
      headers.push(
        rng.pick([
          'Bad Header: x',
          ': empty',
          'X-Fold: a\r\n b',
          'X-Nul: a\u0000b',
          'X-\u00e9: x',
          'Content-Length: -1',
          'Content-Length: 99999999999999999999',
          'Transfer-Encoding: gzip, chunked'
        ])
      )
      break
    case 5:
      headers.push('Expect: 100-continue', 'Content-Length: 10')
      break
    default:
      break
  }
  const body = rng.chance(0.2)
    ? rng.pick(['abc', '3\r\nabc\r\n0\r\n\r\n', 'zz\r\n', Buffer.from(rng.bytes(rng.size(100))).toString('latin1')])
    : ''
  const text = `${line}\r\n${headers.join('\r\n')}${headers.length > 0 ? '\r\n' : ''}\r\n${body}`
  const bytes = Buffer.from(text, 'latin1')
  return rng.chance(0.2) ? mutateBytes(rng, bytes) : bytes
}

/** A corpus request, mutated at the byte level, or one generated from hostile parts. */
export function hostileRequest(rng: Rng, corpus: string[]): Uint8Array {
  if (rng.chance(0.5)) return generatedRequest(rng)
  const base = utf8(rng.pick(corpus))
  return rng.chance(0.15) ? base : mutateBytes(rng, base)
}

/** "http 404" from the first final status line, if any. */
export function statusOf(bytes: Buffer): string | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(bytes.subarray(0, 16).toString('latin1'))
  if (m !== null && m[1].startsWith('1')) {
    const next = bytes.indexOf('\r\n\r\n')
    if (next >= 0) return statusOf(bytes.subarray(next + 4)) ?? `http ${m[1]}`
  }
  return m === null ? undefined : `http ${m[1]}`
}

/**
 * Whether `bytes` hold a whole final HTTP/1.1 response (after any 1xx): a head, then a
 * body by Content-Length or chunked; a response delimited by the close is never whole.
 */
export function responseComplete(bytes: Buffer, head: boolean): boolean {
  let at = 0
  for (;;) {
    const end = bytes.indexOf('\r\n\r\n', at)
    if (end < 0) return false
    const lines = bytes.subarray(at, end).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? NaN)
    if (Number.isNaN(status)) return false
    if (status >= 100 && status < 200) {
      at = end + 4
      continue
    }
    const body = bytes.subarray(end + 4)
    if (head || status === 204 || status === 304) return true
    const header = (name: string): string | undefined =>
      lines
        .find(l => l.toLowerCase().startsWith(name + ':'))
        ?.slice(name.length + 1)
        .trim()
    const te = header('transfer-encoding')
    if (te !== undefined && /chunked/i.test(te))
      return body.includes('0\r\n\r\n') && body.subarray(body.byteLength - 5).toString('latin1') === '0\r\n\r\n'
    const cl = header('content-length')
    return cl !== undefined && body.byteLength >= Number(cl)
  }
}

/**
 * Writes `req` on a fresh TCP connection and reads until a whole response arrived or the
 * server closed; with `halfCloseAfterMs`, half-closes when no whole response came by then.
 */
export async function rawHttp(
  host: string,
  port: number,
  req: Uint8Array,
  timeoutMs: number,
  halfCloseAfterMs?: number
): Promise<Buffer> {
  const head = Buffer.from(req.subarray(0, 5)).toString('latin1').toUpperCase().startsWith('HEAD')
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = connect(port, host)
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`the server neither answered nor closed within ${timeoutMs} ms`))
    }, timeoutMs)
    s.on('data', (d: Buffer) => {
      chunks.push(d)
      if (responseComplete(Buffer.concat(chunks), head)) s.destroy()
    })
    s.on('error', () => {})
    const half =
      halfCloseAfterMs !== undefined
        ? setTimeout(() => {
            s.end()
          }, halfCloseAfterMs)
        : undefined
    s.on('close', () => {
      clearTimeout(timer)
      clearTimeout(half)
      resolve(Buffer.concat(chunks))
    })
    s.write(req)
  })
}
