// The serving side's HTTP/1.1 path as a byte pipe: requests read from a forwarding stream go to the local instance
// on a pooled keep-alive TCP connection and its answers back, bodies as the bytes they came in (no second HTTP stack,
// no re-chunking). Only the heads are parsed (./h1wire.ts): for the headers this hop adds and drops, the instance's
// in-flight count, this host's own error answers and the message boundaries that let both connections be reused.
// One request at a time per stream (the proxy's pool sends no more); bytes a client pipelines wait, paused.
// Upgrades, CONNECT, HTTP/1.0 and requests to an h2c or gRPC instance are handed to Node's HTTP server (./serve.ts).
import { connect, type Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { Logger } from '../util/log.js'
import { ERROR_HEADER, FORWARD_STATUS, type ForwardErrorCode, type HeaderFrame } from './protocol.js'
import {
  INSTANCE_CONNECTIONS,
  INSTANCE_KEEPALIVE_MS,
  SERVE_HEADERS_TIMEOUT_MS,
  SERVE_KEEPALIVE_MS,
  SERVE_MAX_HEADER_BYTES
} from './constants.js'
import { isRefusal, type ForwardTarget, type Resolve } from './routing.js'
import type { StreamSocket } from './duplex.js'
import { IDEMPOTENT } from './headers.js'
import { errorBody } from './upgrade.js'
import {
  BodyScanner,
  UNTIL_CLOSE,
  WireError,
  listOf,
  parseHead,
  requestFraming,
  requestHeadOut,
  responseFraming,
  responseHeadOut,
  valueOf,
  wantsClose,
  type Head
} from './h1wire.js'

/** A host's own answer (a JSON error), as bytes; a refusal carries its code in ERROR_HEADER too. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  opts: { refusal?: boolean; close?: boolean; via: string }
): Buffer {
  const body = errorBody(code, message.replace(/[\r\n]/g, ' '))
  let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n`
  s += `content-length: ${Buffer.byteLength(body)}\r\nvia: ${opts.via}\r\n`
  if (opts.refusal === true) s += `${ERROR_HEADER}: ${code}\r\n`
  if (opts.close === true) s += 'connection: close\r\n'
  return Buffer.from(`${s}\r\n${body}`)
}

type Acquired = (err: Error | null, socket: Socket | null, reused: boolean) => void

/** Keep-alive TCP connections to one local instance: the idle ones reused last in, first out; a bounded number. */
export class AppConnections {
  private readonly idle: Socket[] = []
  private open = 0
  private readonly waiting: Array<{ cb: Acquired; fresh: boolean }> = []
  private closed = false

  constructor(
    private readonly host: string,
    private readonly port: number
  ) {}

  /** A connection (reused: it served a request before); `fresh` asks for a new one. */
  acquire(cb: Acquired, fresh = false): void {
    if (!fresh) {
      const s = this.idle.pop()
      if (s !== undefined) {
        s.removeListener('data', onIdleTraffic)
        s.removeListener('end', onIdleTraffic)
        s.removeListener('timeout', onIdleTraffic)
        s.setTimeout(0)
        cb(null, s, true)
        return
      }
    }
    if (this.closed) {
      cb(new Error('instance forgotten'), null, false)
      return
    }
    if (this.open >= INSTANCE_CONNECTIONS) {
      this.waiting.push({ cb, fresh })
      return
    }
    this.dial(cb)
  }

  private dial(cb: Acquired): void {
    this.open++
    const s = connect({ host: this.host, port: this.port, noDelay: true })
    const onError = (err: Error): void => {
      cb(err, null, false)
    }
    s.once('error', onError)
    s.once('connect', () => {
      s.removeListener('error', onError)
      cb(null, s, false)
    })
    // Whatever happens to it later is seen by its user through 'close'; an error without a listener would end the
    // process.
    s.on('error', ignore)
    s.once('close', () => {
      this.open--
      const i = this.idle.indexOf(s)
      if (i !== -1) this.idle.splice(i, 1)
      const w = this.waiting.shift()
      if (w !== undefined) this.acquire(w.cb, w.fresh)
    })
  }

  /** A connection back after a complete exchange: kept for the next request, or given to one waiting. */
  release(s: Socket): void {
    if (this.closed || s.destroyed) {
      s.destroy()
      return
    }
    const w = this.waiting.shift()
    if (w !== undefined && !w.fresh) {
      w.cb(null, s, true)
      return
    }
    if (w !== undefined) this.waiting.unshift(w)
    // An idle connection that the app writes to or closes is of no more use.
    s.on('data', onIdleTraffic)
    s.on('end', onIdleTraffic)
    s.on('timeout', onIdleTraffic)
    s.setTimeout(INSTANCE_KEEPALIVE_MS)
    this.idle.push(s)
    if (w !== undefined) s.destroy()
  }

  /** Closes the idle connections; those in use close when their exchange is over. */
  close(): void {
    this.closed = true
    for (const s of this.idle.splice(0)) s.destroy()
    for (const w of this.waiting.splice(0)) w.cb(new Error('instance forgotten'), null, false)
  }
}

function ignore(): void {}
function onIdleTraffic(this: Socket): void {
  this.destroy()
}

/** What a pipe needs of its server. */
export interface PipeHost {
  resolve: Resolve
  log: Logger
  via: string
  connections: (t: ForwardTarget) => AppConnections
  onResponse?: (app: string, status: number) => void
  /** Gives the stream to Node's HTTP server, `head` (a request head and what followed it) to be read first. */
  handOff: (socket: StreamSocket, head: Buffer) => void
}

// Where the pipe is with the stream's bytes.
const HEAD = 0
const BODY = 1
const WAIT = 2
const CLOSED = 3

/** One request and its answer. */
interface Exchange {
  head: Head
  target: ForwardTarget | null
  done: (() => void) | null
  /** The head sent on to the app (kept to send again on a fresh connection). */
  out: Buffer | null
  req: BodyScanner
  /** Request body bytes that came before the app connection was ready. */
  queued: Buffer[] | null
  /** The rest of the request body is read and dropped (the exchange was answered here, or ended early). */
  discard: boolean
  reqDone: boolean
  app: Socket | null
  reused: boolean
  retryable: boolean
  expect: boolean
  /** Whether any byte of the response came from the app, and the final head went to the client. */
  heard: boolean
  headSent: boolean
  resBuf: Buffer | null
  res: BodyScanner | null
  untilClose: boolean
  resDone: boolean
  status: number
  keepApp: boolean
  closeClient: boolean
}

/** The byte pipe of one forwarding stream. */
export class H1Pipe {
  private buf: Buffer | null = null
  private state = HEAD
  private x: Exchange | null = null
  private pumping = false
  private again = false
  /** The client ended its side, or the host stops: close once the exchange in flight is over. */
  private closing = false
  private readonly timer: NodeJS.Timeout
  private idleTicks = 0

  constructor(
    private readonly socket: StreamSocket,
    private readonly frame: HeaderFrame,
    private readonly remoteIp: string | undefined,
    private readonly host: PipeHost
  ) {
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('close', this.onClose)
    socket.on('error', this.onError)
    socket.on('drain', this.onDrain)
    this.timer = setTimeout(this.onTimer, SERVE_HEADERS_TIMEOUT_MS)
    this.timer.unref()
  }

  /** Ends the stream once the exchange in flight (if any) is over. */
  stop(): void {
    this.closing = true
    if (this.x === null && this.state !== CLOSED) this.close()
  }

  private readonly onTimer = (): void => {
    if (this.state !== HEAD || this.x !== null) return
    if (this.buf !== null && this.buf.length > 0) {
      this.fatal(new WireError(408, 'request head not complete in time'))
      return
    }
    // An idle stream is closed after SERVE_KEEPALIVE_MS.
    if (++this.idleTicks * SERVE_HEADERS_TIMEOUT_MS >= SERVE_KEEPALIVE_MS) this.close()
    else this.timer.refresh()
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === CLOSED) return
    this.buf = this.buf === null || this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    this.pump()
  }

  private readonly onEnd = (): void => {
    if (this.state === BODY && this.x !== null && !this.x.reqDone) {
      // The request body was cut short: nothing sensible reaches the app.
      this.abort()
      return
    }
    this.closing = true
    if (this.x === null) this.close()
  }

  private readonly onError = (err: Error): void => {
    this.host.log.debug('forwarding stream failed', { error: err.message })
  }

  private readonly onClose = (): void => {
    if (this.state !== CLOSED) this.abort()
  }

  private readonly onDrain = (): void => {
    this.x?.app?.resume()
  }

  /** The stream is gone or unusable: the app connection too, and the exchange is over. */
  private abort(): void {
    this.state = CLOSED
    clearTimeout(this.timer)
    const x = this.x
    this.x = null
    this.socket.destroy()
    if (x === null) return
    if (x.app !== null) {
      this.detachApp(x.app)
      x.app.destroy()
    }
    this.over(x, x.headSent ? x.status : 499)
  }

  private close(): void {
    this.state = CLOSED
    clearTimeout(this.timer)
    this.socket.end()
  }

  /** An answer that leaves the stream unusable (its bytes cannot be framed): sent, then the stream ends. */
  private fatal(err: WireError): void {
    const code: ForwardErrorCode = err.status === 501 ? 'NOT_SUPPORTED' : 'BAD_REQUEST'
    if (this.state === CLOSED) return
    const x = this.x
    if (x !== null) {
      if (x.headSent) {
        this.abort()
        return
      }
      this.x = null
      if (x.app !== null) {
        this.detachApp(x.app)
        x.app.destroy()
      }
      this.over(x, err.status)
    }
    this.socket.write(errorResponse(err.status, code, err.message, { close: true, via: this.host.via }))
    this.buf = null
    this.close()
  }

  /** Takes the stream's bytes as far as the state allows. */
  private pump(): void {
    if (this.pumping) {
      this.again = true
      return
    }
    this.pumping = true
    try {
      do {
        this.again = false
        this.step()
      } while (this.again)
    } catch (err) {
      if (err instanceof WireError) this.fatal(err)
      else {
        this.host.log.error(`forwarding stream: ${(err as Error).message}`)
        this.abort()
      }
    } finally {
      this.pumping = false
    }
  }

  private step(): void {
    while (this.buf !== null && this.buf.length > 0 && this.state !== CLOSED) {
      if (this.state === HEAD) {
        const parsed = parseHead(this.buf, 'request', SERVE_MAX_HEADER_BYTES)
        if (parsed === null) return
        const raw = this.buf
        this.buf = parsed.size < raw.length ? raw.subarray(parsed.size) : null
        this.begin(parsed.head, raw)
      } else if (this.state === BODY) {
        const x = this.x as Exchange
        const buf = this.buf
        const end = x.req.scan(buf)
        this.buf = end < buf.length ? buf.subarray(end) : null
        if (end > 0) this.body(x, end === buf.length ? buf : buf.subarray(0, end))
        if (x.req.done) this.requestDone(x)
      } else {
        // Pipelined bytes wait for the answer in flight.
        this.socket.pause()
        return
      }
    }
  }

  /** A request head: answered here, handed to Node's server, or sent on to the instance. */
  private begin(head: Head, raw: Buffer): void {
    this.timer.refresh()
    this.idleTicks = 0
    const upgrade = listOf(head, 'connection')?.includes('upgrade') === true && valueOf(head, 'upgrade') !== undefined
    if (head.minor === 0 || upgrade || head.method === 'CONNECT') {
      this.handOff(raw)
      return
    }
    const framing = requestFraming(head)
    const x: Exchange = {
      head,
      target: null,
      done: null,
      out: null,
      req: new BodyScanner(framing),
      queued: null,
      discard: true,
      reqDone: false,
      app: null,
      reused: false,
      retryable: framing === 0 && IDEMPOTENT.has(head.method),
      expect: (valueOf(head, 'expect') ?? '').toLowerCase() === '100-continue',
      heard: false,
      headSent: false,
      resBuf: null,
      res: null,
      untilClose: false,
      resDone: false,
      status: 0,
      keepApp: false,
      closeClient: wantsClose(head)
    }
    this.x = x
    this.state = BODY
    if (!head.target.startsWith('/')) {
      this.answer(x, 'BAD_REQUEST', 'request target must be a path')
    } else {
      const t = this.host.resolve(this.frame)
      if (isRefusal(t)) {
        // The header tells the proxy that the app never saw the request: safe to retry elsewhere.
        this.answer(x, t.code, t.message, true)
      } else if (t.protocol !== 'http1') {
        this.x = null
        this.state = HEAD
        this.handOff(raw)
        return
      } else {
        x.target = t
        x.done = t.begin()
        x.discard = false
        x.out = requestHeadOut(head, { clientIp: this.remoteIp, via: this.host.via })
        this.send(x, false)
      }
    }
    if (this.x === x && x.req.done && !x.reqDone) this.requestDone(x)
  }

  private handOff(raw: Buffer): void {
    this.state = CLOSED
    clearTimeout(this.timer)
    const s = this.socket
    s.removeListener('data', this.onData)
    s.removeListener('end', this.onEnd)
    s.removeListener('close', this.onClose)
    s.removeListener('error', this.onError)
    s.removeListener('drain', this.onDrain)
    s.pause()
    // `raw` is the request head and every byte after it (this.buf is its tail).
    this.buf = null
    this.host.handOff(s, raw)
  }

  /** Sends the request head (and what of the body came) on a connection to the instance. */
  private send(x: Exchange, fresh: boolean): void {
    const t = x.target as ForwardTarget
    this.host.connections(t).acquire((err, app, reused) => {
      if (this.x !== x) {
        // The exchange ended while the connection was made.
        if (app !== null) this.host.connections(t).release(app)
        return
      }
      if (err !== null || app === null) {
        const refused = (err as { code?: string } | null)?.code === 'ECONNREFUSED'
        this.host.log.debug('connection to an instance failed', { app: t.app, error: err?.message })
        if (refused)
          this.answer(x, 'INSTANCE_UNREACHABLE', `instance ${t.instanceId} of ${t.app} refused the connection`, true)
        else
          this.answer(
            x,
            'UPSTREAM_FAILED',
            `instance ${t.instanceId} of ${t.app} failed: ${err?.message ?? 'no connection'}`
          )
        return
      }
      x.app = app
      x.reused = reused
      app.on('data', this.onAppData)
      app.on('end', this.onAppEnd)
      app.on('close', this.onAppClose)
      app.on('drain', this.onAppDrain)
      const q = x.queued
      x.queued = null
      if (q === null) app.write(x.out as Buffer)
      else {
        app.cork()
        app.write(x.out as Buffer)
        for (const b of q) app.write(b)
        app.uncork()
      }
      if (app.writableNeedDrain) this.socket.pause()
      else if (this.state === BODY) this.socket.resume()
    }, fresh)
  }

  /** Request body bytes: on to the app, held until its connection is ready, or dropped. */
  private body(x: Exchange, b: Buffer): void {
    if (x.discard) return
    if (x.app === null) {
      ;(x.queued ??= []).push(b)
      this.socket.pause()
      return
    }
    if (!x.app.write(b)) this.socket.pause()
  }

  private requestDone(x: Exchange): void {
    if (this.x !== x) return
    x.reqDone = true
    this.state = WAIT
    if (x.resDone) this.finish(x)
  }

  private readonly onAppDrain = (): void => {
    if (this.state === BODY) this.socket.resume()
  }

  private readonly onAppData = (chunk: Buffer): void => {
    const x = this.x
    if (x === null || x.resDone) return
    x.heard = true
    try {
      if (x.res === null) this.responseHead(x, chunk)
      else this.responseBody(x, chunk, 0)
    } catch (err) {
      const e = err instanceof WireError ? err : new WireError(502, (err as Error).message)
      this.appFailed(x, `sent a malformed response: ${e.message}`)
    }
  }

  private responseHead(x: Exchange, chunk: Buffer): void {
    let buf = x.resBuf === null ? chunk : Buffer.concat([x.resBuf, chunk])
    x.resBuf = null
    for (;;) {
      const parsed = parseHead(buf, 'response', SERVE_MAX_HEADER_BYTES)
      if (parsed === null) {
        x.resBuf = buf
        return
      }
      const head = parsed.head
      if (head.status < 200) {
        // 100 Continue, 103 Early Hints…: on to the client as they came; 101 only answers an upgrade, which is not
        // this path's.
        if (head.status === 101) throw new WireError(502, '101 Switching Protocols to a request without an upgrade')
        this.socket.write(buf.subarray(0, parsed.size))
        if (head.status === 100) x.expect = false
        if (parsed.size === buf.length) return
        buf = buf.subarray(parsed.size)
        continue
      }
      const framing = responseFraming(head, x.head.method)
      x.status = head.status
      x.keepApp = head.minor === 1 && framing !== UNTIL_CLOSE && !wantsClose(head)
      // A client that waits for a 100 Continue and got a final answer instead sends no body: this stream cannot
      // know where the next request starts, so it closes after this one.
      if (framing === UNTIL_CLOSE || this.closing || (x.expect && !x.reqDone)) x.closeClient = true
      x.res = new BodyScanner(framing)
      x.untilClose = framing === UNTIL_CLOSE
      const out = responseHeadOut(head, { via: this.host.via, close: x.closeClient })
      x.headSent = true
      if (parsed.size === buf.length) {
        this.socket.write(out)
        if (x.res.done) this.responseDone(x)
        return
      }
      this.socket.cork()
      this.socket.write(out)
      this.responseBody(x, buf, parsed.size)
      this.socket.uncork()
      return
    }
  }

  private responseBody(x: Exchange, buf: Buffer, from: number): void {
    const res = x.res as BodyScanner
    if (!res.done) {
      const end = res.scan(buf, from)
      if (end > from) {
        const part = from === 0 && end === buf.length ? buf : buf.subarray(from, end)
        if (!this.socket.write(part)) x.app?.pause()
      }
      if (end < buf.length) x.keepApp = false // bytes after the response: the app connection is out of step
    }
    if (res.done) this.responseDone(x)
  }

  private readonly onAppEnd = (): void => {
    const x = this.x
    if (x === null || x.resDone) return
    if (x.untilClose) {
      this.responseDone(x)
      return
    }
    this.appFailed(x, 'closed the connection before its response was complete')
  }

  private readonly onAppClose = (): void => {
    const x = this.x
    if (x === null || x.resDone || x.app === null) return
    this.appFailed(x, 'closed the connection before its response was complete')
  }

  /** The app's connection failed, or its answer is malformed. */
  private appFailed(x: Exchange, why: string): void {
    const app = x.app
    if (app !== null) {
      this.detachApp(app)
      app.destroy()
      x.app = null
    }
    const t = x.target as ForwardTarget
    // A keep-alive connection the app closed just as it was reused (the app's idle timeout passed): an idempotent
    // request without a body goes again, once, on a fresh connection (RFC 9112 §9.3.1).
    if (!x.heard && x.reused && x.retryable) {
      x.retryable = false
      this.send(x, true)
      return
    }
    this.host.log.debug('upstream request failed', { app: t.app, instance: t.instanceId, error: why })
    if (x.headSent) {
      this.abort()
      return
    }
    x.resBuf = null
    this.answer(x, 'UPSTREAM_FAILED', `instance ${t.instanceId} of ${t.app} failed: ${why}`)
  }

  /** This host's own answer to the exchange in flight; the rest of its request body is dropped. */
  private answer(x: Exchange, code: ForwardErrorCode, message: string, refusal = false): void {
    if (x.headSent) {
      this.abort()
      return
    }
    if (x.app !== null) {
      this.detachApp(x.app)
      x.app.destroy()
      x.app = null
    }
    x.discard = true
    x.queued = null
    x.keepApp = false
    if (x.expect && !x.reqDone) x.closeClient = true
    x.status = FORWARD_STATUS[code]
    x.headSent = true
    this.socket.write(
      errorResponse(x.status, code, message, { refusal, close: x.closeClient || this.closing, via: this.host.via })
    )
    if (this.closing) x.closeClient = true
    if (x.discard && this.state === BODY) this.socket.resume()
    this.responseDone(x)
  }

  private responseDone(x: Exchange): void {
    x.resDone = true
    if (x.reqDone || x.req.done) {
      x.reqDone = true
      this.state = WAIT
      this.finish(x)
      return
    }
    // Answered before the request body was all read: the rest is dropped, and the app connection (which may not have
    // read it) is not reused.
    x.discard = true
    x.queued = null
    x.keepApp = false
    if (x.app !== null) {
      this.detachApp(x.app)
      x.app.destroy()
      x.app = null
    }
    if (x.closeClient) {
      this.x = null
      this.over(x, x.status)
      this.close()
    } else if (this.state === BODY) this.socket.resume()
  }

  private finish(x: Exchange): void {
    this.x = null
    const app = x.app
    if (app !== null) {
      this.detachApp(app)
      if (x.keepApp && x.target !== null) this.host.connections(x.target).release(app)
      else app.destroy()
    }
    this.over(x, x.status)
    if (x.closeClient || this.closing) {
      this.close()
      return
    }
    this.state = HEAD
    this.timer.refresh()
    this.socket.resume()
    if (this.buf !== null) this.pump()
  }

  private over(x: Exchange, status: number): void {
    if (x.done !== null) {
      x.done()
      x.done = null
    }
    this.host.onResponse?.(x.target?.app ?? this.frame.app, status)
  }

  private detachApp(app: Socket): void {
    app.removeListener('data', this.onAppData)
    app.removeListener('end', this.onAppEnd)
    app.removeListener('close', this.onAppClose)
    app.removeListener('drain', this.onAppDrain)
    app.resume()
  }
}
