// The byte pipe's HTTP/1.1 parser (src/forward/h1wire.ts): heads, body framing, the chunked scanner at every split
// of its input, the heads sent on, and hostile input (smuggling, bad sizes, huge heads, random bytes) refused with a
// WireError and its status, never another exception.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  BodyScanner,
  CHUNKED,
  UNTIL_CLOSE,
  WireError,
  parseHead,
  requestFraming,
  requestHeadOut,
  responseFraming,
  responseHeadOut,
  wantsClose,
  type Head
} from '../../src/forward/h1wire.js'
import { Rng } from '../helpers/fuzz.js'

const MAX = 64 * 1024
const req = (s: string): Head => {
  const p = parseHead(Buffer.from(s, 'latin1'), 'request', MAX)
  assert.ok(p !== null, 'complete head')
  return p.head
}
const res = (s: string): Head => {
  const p = parseHead(Buffer.from(s, 'latin1'), 'response', MAX)
  assert.ok(p !== null, 'complete head')
  return p.head
}
/** The WireError a function throws: its status and message. */
function wireError(fn: () => unknown): WireError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof WireError, `a WireError, not ${String(err)}`)
    return err
  }
  assert.fail('no error')
}

test('a request head: method, target, version, headers in order and lower case, and its size', () => {
  const raw = Buffer.from('\r\nPOST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two:  a b \r\nx-two: c\r\n\r\nBODY')
  const p = parseHead(raw, 'request', MAX)
  assert.ok(p !== null)
  assert.equal(p.head.method, 'POST')
  assert.equal(p.head.target, '/a?b=1')
  assert.equal(p.head.minor, 1)
  assert.deepEqual(p.head.names, ['host', 'x-two', 'x-two'])
  assert.deepEqual(p.head.values, ['x', 'a b', 'c'])
  assert.equal(raw.subarray(p.size).toString(), 'BODY', 'the size covers the leading CRLF and the head')
  assert.equal(parseHead(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), 'request', MAX), null, 'not complete yet')
})

test('a response head: status, reason (possibly empty), version', () => {
  const h = res('HTTP/1.0 404 Not Found\r\ncontent-length: 3\r\n\r\n')
  assert.equal(h.status, 404)
  assert.equal(h.reason, 'Not Found')
  assert.equal(h.minor, 0)
  assert.equal(res('HTTP/1.1 204\r\n\r\n').reason, '')
})

test('malformed heads are refused with 400 (a request) or 502 (a response), and a clear reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['GET / HTTP/1.1\nHost: x\n\n', /CRLF/],
    ['GET / HTTP/2.0\r\n\r\n', /request line/],
    ['GET  / HTTP/1.1\r\n\r\n', /request line/],
    ['G(T / HTTP/1.1\r\n\r\n', /request line/],
    ['GET / http/1.1\r\n\r\n', /request line/],
    ['GET /\x01 HTTP/1.1\r\n\r\n', /request line/],
    ['GET / HTTP/1.1\r\nHost : x\r\n\r\n', /header name/],
    ['GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', /header line/],
    ['GET / HTTP/1.1\r\nnocolon\r\n\r\n', /header line/],
    ['GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', /control character/],
    ['GET / HTTP/1.1\r\nX: a\rb\r\n\r\n', /control character/]
  ]
  for (const [s, re] of cases) {
    const e = wireError(() => parseHead(Buffer.from(s, 'latin1'), 'request', MAX))
    assert.equal(e.status, 400, JSON.stringify(s))
    assert.match(e.message, re, JSON.stringify(s))
  }
  assert.equal(wireError(() => res('HTTP/1.1 99 Low\r\n\r\n')).status, 502)
  assert.equal(wireError(() => res('HTTP/1.1 200 OK\r\nbad header\r\n\r\n')).status, 502)
})

test('heads are bounded: too large, or too many lines, is a 431; an endless head is refused before its end', () => {
  const big = `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(MAX)}\r\n\r\n`
  assert.equal(wireError(() => req(big)).status, 431)
  // No end in sight: refused once past the bound, without waiting for a CRLFCRLF.
  const endless = Buffer.from(`GET / HTTP/1.1\r\nx-big: ${'a'.repeat(MAX + 10)}`)
  assert.equal(wireError(() => parseHead(endless, 'request', MAX)).status, 431)
  const many = `GET / HTTP/1.1\r\n${'x: 1\r\n'.repeat(2001)}\r\n`
  assert.match(wireError(() => req(many)).message, /too many header lines/)
  assert.equal(wireError(() => parseHead(endless, 'response', MAX)).status, 502)
})

test('request framing: Content-Length, chunked, none; smuggling shapes refused', () => {
  assert.equal(requestFraming(req('GET / HTTP/1.1\r\n\r\n')), 0)
  assert.equal(requestFraming(req('POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n')), 12)
  assert.equal(requestFraming(req('POST / HTTP/1.1\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n')), 5)
  assert.equal(requestFraming(req('POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n')), CHUNKED)
  assert.equal(requestFraming(req('POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n')), CHUNKED)
  const refused: Array<[string, RegExp]> = [
    ['POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', /both/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n', /both/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', /end in chunked/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', /once/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n', /end in chunked/],
    ['POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', /conflicting/],
    ['POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n', /conflicting/],
    ['POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', /invalid/],
    ['POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n', /invalid/],
    ['POST / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n', /invalid/],
    ['POST / HTTP/1.1\r\nContent-Length:\r\n\r\n', /Content-Length/]
  ]
  for (const [s, re] of refused) {
    const e = wireError(() => requestFraming(req(s)))
    assert.equal(e.status, 400, s)
    assert.match(e.message, re, s)
  }
})

test('response framing: HEAD, 1xx, 204 and 304 have no body; chunked, Content-Length or until close', () => {
  const h = res('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n')
  assert.equal(responseFraming(h, 'GET'), 10)
  assert.equal(responseFraming(h, 'HEAD'), 0)
  assert.equal(responseFraming(res('HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n'), 'GET'), 0)
  assert.equal(responseFraming(res('HTTP/1.1 304 Not Modified\r\n\r\n'), 'GET'), 0)
  assert.equal(responseFraming(res('HTTP/1.1 103 Early Hints\r\n\r\n'), 'GET'), 0)
  assert.equal(responseFraming(res('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n'), 'GET'), CHUNKED)
  assert.equal(responseFraming(res('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n'), 'GET'), UNTIL_CLOSE)
  assert.equal(responseFraming(res('HTTP/1.1 200 OK\r\n\r\n'), 'GET'), UNTIL_CLOSE)
  const both = res('HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n')
  assert.equal(wireError(() => responseFraming(both, 'GET')).status, 502)
})

test('keep-alive: HTTP/1.1 unless Connection: close, HTTP/1.0 only with keep-alive', () => {
  assert.equal(wantsClose(req('GET / HTTP/1.1\r\n\r\n')), false)
  assert.equal(wantsClose(req('GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n')), true)
  assert.equal(wantsClose(req('GET / HTTP/1.0\r\n\r\n')), true)
  assert.equal(wantsClose(req('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')), false)
})

/** Every byte of a chunked body through the scanner in pieces of `step`: where it says the body ends. */
function scanAll(body: Buffer, step: number): number {
  const s = new BodyScanner(CHUNKED)
  for (let i = 0; i < body.length; i += step) {
    const piece = body.subarray(i, Math.min(body.length, i + step))
    const end = s.scan(piece)
    if (s.done) return i + end
    assert.equal(end, piece.length, 'a piece before the end is all body')
  }
  return -1
}

test('the chunked scanner finds the end of a body at every split of its input (extensions and trailers too)', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nx-digest: abc\r\nx-n: 2\r\n\r\n')
  const next = Buffer.from('GET / HTTP/1.1\r\n\r\n')
  const all = Buffer.concat([body, next])
  for (let step = 1; step <= all.length; step++) assert.equal(scanAll(all, step), body.length, `pieces of ${step}`)
  assert.equal(scanAll(Buffer.from('0\r\n\r\n'), 1), 5, 'an empty body')
  // A Content-Length body: the scanner stops at its length.
  const cl = new BodyScanner(4)
  assert.equal(cl.scan(Buffer.from('ab')), 2)
  assert.equal(cl.scan(Buffer.from('cdGET')), 2)
  assert.ok(cl.done)
  assert.ok(new BodyScanner(0).done, 'no body')
  const uc = new BodyScanner(UNTIL_CLOSE)
  assert.equal(uc.scan(Buffer.from('anything')), 8)
  assert.equal(uc.done, false)
})

test('bad chunked bodies are refused: sizes, missing CRLFs, bare LFs, endless extensions or trailers', () => {
  const bad: Array<[string, RegExp]> = [
    ['g\r\n', /chunk size/],
    ['\r\n', /chunk size/],
    ['-1\r\n', /chunk size/],
    ['ffffffffffffff\r\n', /too large/],
    ['5\nhello\r\n', /chunk size/],
    ['5\r\nhelloX\r\n', /CRLF/],
    ['5\r\nhello\r\r', /CRLF/],
    ['0\r\nx: 1\n\r\n', /trailer/],
    ['0\r\n\rX', /CRLF/],
    [`1;${'e'.repeat(5000)}\r\n`, /extension/],
    [`0\r\n${'x: 1\r\n'.repeat(15000)}\r\n`, /trailers too large/]
  ]
  for (const [s, re] of bad) {
    const e = wireError(() => new BodyScanner(CHUNKED).scan(Buffer.from(s)))
    assert.equal(e.status, 400, JSON.stringify(s.slice(0, 20)))
    assert.match(e.message, re, JSON.stringify(s.slice(0, 20)))
  }
})

test('the head sent on: hop-by-hop headers and those Connection names dropped, framing kept, X-Forwarded-*/Via added', () => {
  const h = req(
    'POST /x HTTP/1.1\r\nHost: app.physarum\r\nConnection: keep-alive, x-secret, content-length\r\nKeep-Alive: 5\r\n' +
      'TE: trailers\r\nx-secret: 1\r\nContent-Length: 3\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n' +
      'Via: 1.1 edge\r\nExpect: 100-continue\r\nTrailer: x-d\r\n\r\n'
  )
  const out = requestHeadOut(h, { clientIp: '127.0.0.9', via: '1.1 physarum' }).toString('latin1')
  assert.equal(
    out,
    'POST /x HTTP/1.1\r\nhost: app.physarum\r\ncontent-length: 3\r\nexpect: 100-continue\r\ntrailer: x-d\r\n' +
      'x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.physarum\r\n' +
      'via: 1.1 edge, 1.1 physarum\r\n\r\n'
  )
  const r = res(
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n'
  )
  assert.equal(
    responseHeadOut(r, { via: '1.1 physarum', close: true }).toString(),
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nvia: 1.1 physarum\r\nconnection: close\r\n\r\n'
  )
})

test('random and mutated bytes give a head, null or a WireError, never another exception', () => {
  const rng = new Rng(Number(process.env.PHYSARUM_FUZZ_SEED ?? 18))
  const seeds = [
    'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  ].map(s => Buffer.from(s))
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(rng.chance(0.3) ? rng.bytes(rng.size(200)) : rng.pick(seeds))
    if (!rng.chance(0.3)) for (let k = 0, n = 1 + rng.int(4); k < n; k++) b[rng.int(b.length)] = rng.int(256)
    for (const kind of ['request', 'response'] as const) {
      try {
        const p = parseHead(b, kind, 256)
        if (p === null) continue
        const f = kind === 'request' ? requestFraming(p.head) : responseFraming(p.head, 'GET')
        new BodyScanner(f).scan(b, p.size)
        if (kind === 'request') requestHeadOut(p.head, { via: '1.1 physarum' })
        else responseHeadOut(p.head, { via: '1.1 physarum', close: false })
      } catch (err) {
        assert.ok(err instanceof WireError, `case ${i}: ${String(err)}`)
      }
    }
  }
})
