// HTTP/1.1 on the wire for the serving side's byte pipe (./pipe.ts): a strict, bounded parse of request and response
// heads (RFC 9112), the framing a body has (Content-Length, chunked, none, or until the connection closes), a scanner
// that finds where a body ends in the bytes that pass by without copying or re-chunking them, and the heads this hop
// sends on (its hop-by-hop headers dropped, X-Forwarded-* and Via added). Anything malformed is a WireError with the
// status to answer and a one-line reason, never a throw of another kind.

/** Header lines a head may have (Node's own server default). */
export const MAX_HEADER_LINES = 2000
/** A chunk-size line's extension, and all of a chunked body's trailer section, at most (bytes). */
const MAX_CHUNK_EXT = 4096
const MAX_TRAILERS = 64 * 1024

export class WireError extends Error {
  override name = 'WireError'
  constructor(
    /** The status to answer with (400, 431, 501 for a request; 502 for an app's response). */
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

export interface Head {
  /** Request: the method and target; response: ''. */
  method: string
  target: string
  /** Response: the status code and reason phrase; request: 0 and ''. */
  status: number
  reason: string
  /** HTTP/1.<minor>. */
  minor: number
  /** Header names in lower case, and their values (surrounding whitespace taken off), in order. */
  names: string[]
  values: string[]
}

/** A body's framing: its length in bytes (0: no body), or one of these. */
export const CHUNKED = -1
export const UNTIL_CLOSE = -2

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP\/1\.([01])$/
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
const DIGITS = /^\d{1,15}$/
const CRLF2 = Buffer.from('\r\n\r\n')

/**
 * The head at the start of `buf`: the head and the bytes it took (CRLFs before a request line included), or null when
 * it is not complete yet. `max` bounds the head (bytes): a request beyond it is a 431, a response a 502.
 */
export function parseHead(buf: Buffer, kind: 'request' | 'response', max: number): { head: Head; size: number } | null {
  const fail = kind === 'request' ? 400 : 502
  let start = 0
  // RFC 9112 §2.2: empty lines before a request line are ignored.
  if (kind === 'request') while (buf.length >= start + 2 && buf[start] === 13 && buf[start + 1] === 10) start += 2
  const end = buf.indexOf(CRLF2, start)
  if (end === -1) {
    if (buf.length - start > max) throw new WireError(kind === 'request' ? 431 : 502, `head larger than ${max} bytes`)
    if (buf.indexOf('\n\n', start) !== -1 || buf.indexOf('\r\n\n', start) !== -1)
      throw new WireError(fail, 'line ends must be CRLF')
    return null
  }
  if (end - start > max) throw new WireError(kind === 'request' ? 431 : 502, `head larger than ${max} bytes`)
  const lines = buf.toString('latin1', start, end).split('\r\n')
  if (lines.length - 1 > MAX_HEADER_LINES) throw new WireError(kind === 'request' ? 431 : 502, 'too many header lines')
  const head: Head = { method: '', target: '', status: 0, reason: '', minor: 1, names: [], values: [] }
  if (kind === 'request') {
    const m = REQUEST_LINE.exec(lines[0])
    if (m === null) throw new WireError(400, 'malformed request line')
    head.method = m[1]
    head.target = m[2]
    head.minor = m[3] === '0' ? 0 : 1
  } else {
    const m = STATUS_LINE.exec(lines[0])
    if (m === null) throw new WireError(502, 'malformed status line')
    head.minor = m[1] === '0' ? 0 : 1
    head.status = Number(m[2])
    head.reason = m[3] ?? ''
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    const c = line.indexOf(':')
    // A line that starts with whitespace is an obsolete line folding (RFC 9112 §5.2), refused like a line without a
    // name; a name must be a token, with no whitespace before its colon (§5.1).
    if (c <= 0) throw new WireError(fail, line.length === 0 ? 'empty header line' : 'malformed header line')
    const name = line.slice(0, c)
    if (!TOKEN.test(name)) throw new WireError(fail, 'malformed header name')
    const value = line.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (BAD_VALUE.test(value)) throw new WireError(fail, `control character in header ${name.slice(0, 64)}`)
    head.names.push(name.toLowerCase())
    head.values.push(value)
  }
  return { head, size: end + 4 }
}

/** The values of a header, each comma-separated element on its own (lower case), or null when absent. */
export function listOf(head: Head, name: string): string[] | null {
  let out: string[] | null = null
  for (let i = 0; i < head.names.length; i++) {
    if (head.names[i] !== name) continue
    out ??= []
    for (const t of head.values[i].split(',')) {
      const v = t.trim().toLowerCase()
      if (v.length > 0) out.push(v)
    }
  }
  return out
}

/** The first value of a header, or undefined. */
export function valueOf(head: Head, name: string): string | undefined {
  const i = head.names.indexOf(name)
  return i === -1 ? undefined : head.values[i]
}

function contentLength(values: string[], status: number): number {
  let n = -1
  for (const v of values) {
    if (!DIGITS.test(v)) throw new WireError(status, 'invalid Content-Length')
    const x = Number(v)
    if (n !== -1 && x !== n) throw new WireError(status, 'conflicting Content-Length values')
    n = x
  }
  if (n === -1) throw new WireError(status, 'empty Content-Length')
  return n
}

/**
 * How a request's body is framed (RFC 9112 §6.3). Both Content-Length and Transfer-Encoding (the classic request
 * smuggling), a Transfer-Encoding that does not end in chunked, or a bad or conflicting Content-Length are refused.
 */
export function requestFraming(head: Head): number {
  const te = listOf(head, 'transfer-encoding')
  const cl = listOf(head, 'content-length')
  if (te !== null && cl !== null) throw new WireError(400, 'both Content-Length and Transfer-Encoding')
  if (te !== null) {
    if (te.length === 0 || te[te.length - 1] !== 'chunked' || te.indexOf('chunked') !== te.length - 1)
      throw new WireError(400, 'Transfer-Encoding must end in chunked, once')
    if (!te.every(t => TOKEN.test(t))) throw new WireError(400, 'malformed Transfer-Encoding')
    return CHUNKED
  }
  return cl === null ? 0 : contentLength(cl, 400)
}

/** How a response's body is framed, given the request's method (RFC 9112 §6.3). */
export function responseFraming(head: Head, method: string): number {
  if (method === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) return 0
  const te = listOf(head, 'transfer-encoding')
  const cl = listOf(head, 'content-length')
  if (te !== null && cl !== null) throw new WireError(502, 'response has both Content-Length and Transfer-Encoding')
  if (te !== null) return te.length > 0 && te[te.length - 1] === 'chunked' ? CHUNKED : UNTIL_CLOSE
  return cl === null ? UNTIL_CLOSE : contentLength(cl, 502)
}

/** Whether the peer's Connection header (or HTTP/1.0 without keep-alive) asks to close after this message. */
export function wantsClose(head: Head): boolean {
  const c = listOf(head, 'connection')
  if (head.minor === 0) return c === null || !c.includes('keep-alive')
  return c !== null && c.includes('close')
}

// Chunked body states.
const SIZE = 0
const EXT = 1
const SIZE_LF = 2
const DATA = 3
const DATA_CR = 4
const DATA_LF = 5
const TRAILER_START = 6
const TRAILER = 7
const TRAILER_LF = 8
const END_LF = 9
const DONE = 10

/**
 * Finds where a body ends in the bytes that pass by, for a framing from requestFraming or responseFraming. For
 * chunked bodies the size lines, extensions and trailers are checked (hex sizes up to 2^53, CRLF line ends, bounded
 * extensions and trailers), the data skipped over.
 */
export class BodyScanner {
  private state: number
  private remaining: number
  private readonly chunked: boolean
  private readonly untilClose: boolean
  private digits = 0
  private ext = 0
  private trailers = 0

  constructor(framing: number) {
    this.remaining = framing >= 0 ? framing : 0
    this.state = framing === CHUNKED ? SIZE : framing === UNTIL_CLOSE ? DATA : framing === 0 ? DONE : DATA
    this.chunked = framing === CHUNKED
    this.untilClose = framing === UNTIL_CLOSE
  }

  get done(): boolean {
    return this.state === DONE
  }

  /** Where in `buf` (from `from`) the body ends: buf.length when it goes on past it. */
  scan(buf: Uint8Array, from = 0): number {
    if (this.untilClose) return buf.length
    let i = from
    const n = buf.length
    if (!this.chunked) {
      // A Content-Length body.
      const take = Math.min(this.remaining, n - i)
      this.remaining -= take
      if (this.remaining === 0) this.state = DONE
      return i + take
    }
    while (i < n && this.state !== DONE) {
      const b = buf[i]
      switch (this.state) {
        case SIZE: {
          const d = hexDigit(b)
          if (d !== -1) {
            if (++this.digits > 13) throw new WireError(400, 'chunk size too large')
            this.remaining = this.remaining * 16 + d
          } else if (this.digits === 0) throw new WireError(400, 'malformed chunk size')
          else if (b === 13) this.state = SIZE_LF
          else if (b === 59 || b === 32 || b === 9) {
            this.state = EXT
            this.ext = 0
          } else throw new WireError(400, 'malformed chunk size')
          i++
          break
        }
        case EXT:
          if (b === 13) this.state = SIZE_LF
          else if (b === 10 || b === 0 || ++this.ext > MAX_CHUNK_EXT)
            throw new WireError(400, 'malformed chunk extension')
          i++
          break
        case SIZE_LF:
          if (b !== 10) throw new WireError(400, 'chunk size line must end in CRLF')
          i++
          this.digits = 0
          this.state = this.remaining === 0 ? TRAILER_START : DATA
          break
        case DATA: {
          const take = Math.min(this.remaining, n - i)
          this.remaining -= take
          i += take
          if (this.remaining === 0) this.state = DATA_CR
          break
        }
        case DATA_CR:
          if (b !== 13) throw new WireError(400, 'chunk data must end in CRLF')
          this.state = DATA_LF
          i++
          break
        case DATA_LF:
          if (b !== 10) throw new WireError(400, 'chunk data must end in CRLF')
          this.state = SIZE
          i++
          break
        case TRAILER_START:
          if (b === 13) this.state = END_LF
          else this.state = TRAILER
          if (this.state === TRAILER) continue
          i++
          break
        case TRAILER:
          if (++this.trailers > MAX_TRAILERS) throw new WireError(400, 'trailers too large')
          if (b === 13) this.state = TRAILER_LF
          else if (b === 10 || b === 0) throw new WireError(400, 'malformed trailer line')
          i++
          break
        case TRAILER_LF:
          if (b !== 10) throw new WireError(400, 'trailer line must end in CRLF')
          this.state = TRAILER_START
          i++
          break
        case END_LF:
          if (b !== 10) throw new WireError(400, 'chunked body must end in CRLF')
          this.state = DONE
          i++
          break
      }
    }
    return i
  }
}

function hexDigit(b: number): number {
  if (b >= 48 && b <= 57) return b - 48
  if (b >= 97 && b <= 102) return b - 87
  if (b >= 65 && b <= 70) return b - 55
  return -1
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) this hop drops; the framing headers stay, its bytes pass as they came. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'upgrade'
])
/** What a Connection header may not name away: the framing of the bytes that pass, and the target's host. */
const KEPT = new Set(['content-length', 'transfer-encoding', 'host'])

function dropped(head: Head): Set<string> | null {
  const named = listOf(head, 'connection')
  if (named === null) return null
  const s = new Set<string>()
  for (const n of named) if (!KEPT.has(n)) s.add(n)
  return s
}

/** The request head that goes on to the app: HTTP/1.1, hop-by-hop headers out, X-Forwarded-* and Via in. */
export function requestHeadOut(head: Head, hop: { clientIp?: string; via: string }): Buffer {
  const named = dropped(head)
  let s = `${head.method} ${head.target} HTTP/1.1\r\n`
  let xff: string | undefined
  let via: string | undefined
  let proto = false
  let fwdHost = false
  let host: string | undefined
  for (let i = 0; i < head.names.length; i++) {
    const k = head.names[i]
    const v = head.values[i]
    if (HOP_BY_HOP.has(k) || named?.has(k) === true) continue
    if (k === 'x-forwarded-for') xff = xff === undefined ? v : `${xff}, ${v}`
    else if (k === 'via') via = via === undefined ? v : `${via}, ${v}`
    else {
      if (k === 'x-forwarded-proto') proto = true
      else if (k === 'x-forwarded-host') fwdHost = true
      else if (k === 'host') host ??= v
      s += `${k}: ${v}\r\n`
    }
  }
  if (hop.clientIp !== undefined) xff = xff === undefined ? hop.clientIp : `${xff}, ${hop.clientIp}`
  if (xff !== undefined) s += `x-forwarded-for: ${xff}\r\n`
  if (!proto) s += 'x-forwarded-proto: http\r\n'
  if (!fwdHost && host !== undefined) s += `x-forwarded-host: ${host}\r\n`
  s += `via: ${via === undefined ? hop.via : `${via}, ${hop.via}`}\r\n\r\n`
  return Buffer.from(s, 'latin1')
}

/** The response head that goes back on the stream: hop-by-hop headers out, Via in, and Connection: close when asked. */
export function responseHeadOut(head: Head, hop: { via: string; close: boolean }): Buffer {
  const named = dropped(head)
  let s = `HTTP/1.1 ${head.status} ${head.reason}\r\n`
  let via: string | undefined
  for (let i = 0; i < head.names.length; i++) {
    const k = head.names[i]
    const v = head.values[i]
    if (HOP_BY_HOP.has(k) || named?.has(k) === true) continue
    if (k === 'via') via = via === undefined ? v : `${via}, ${v}`
    else s += `${k}: ${v}\r\n`
  }
  s += `via: ${via === undefined ? hop.via : `${via}, ${hop.via}`}\r\n`
  if (hop.close) s += 'connection: close\r\n'
  return Buffer.from(s + '\r\n', 'latin1')
}
