// HTTP/2 through the hop, for h2c and gRPC apps: a pool of node:http2 client sessions (one
// per instance, each multiplexing every request to it) and the relay of one stream to
// another — headers, bodies both ways as they come (client-, server- and bidi-streaming),
// trailers (grpc-status, grpc-message, metadata), trailers-only answers, and resets either
// way (a cancelled call or a client gone is an RST_STREAM to the app). Both sides use it:
// the proxy over a /physarum/http/1.0.0 stream whose header frame says `proto: 'h2'`, the
// instance host towards the app over TCP.
import {
  connect as h2connect,
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type Http2Session,
  type Http2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream
} from 'node:http2'
import type { Duplex } from 'node:stream'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { endToEnd, hasBody } from './headers.js'
import { errorBody } from './upgrade.js'
import { H2_PING_MS, H2_SESSION_OPTIONS } from './constants.js'

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = constants

/** Streams open per client session (relayed ones), for its keep-alive pings. */
const active = new WeakMap<Http2Session, number>()

/** Whether a request is gRPC (its errors are then gRPC statuses, not JSON). */
export function isGrpc(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): boolean {
  const ct = headers['content-type']
  return typeof ct === 'string' && ct.startsWith('application/grpc')
}

/** gRPC status codes physarum answers with itself (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = { NOT_FOUND: 5, INTERNAL: 13, UNAVAILABLE: 14, DEADLINE_EXCEEDED: 4, UNIMPLEMENTED: 12 }

/** The gRPC status for an HTTP status of a physarum error (the gRPC spec's own mapping of HTTP to gRPC codes). */
export function grpcStatusOf(httpStatus: number): number {
  if (httpStatus === 404) return GRPC_STATUS.NOT_FOUND
  if (httpStatus === 504) return GRPC_STATUS.DEADLINE_EXCEEDED
  if (httpStatus === 501) return GRPC_STATUS.UNIMPLEMENTED
  if (httpStatus >= 500 || httpStatus === 499) return GRPC_STATUS.UNAVAILABLE
  return GRPC_STATUS.INTERNAL
}

/** A grpc-message value: UTF-8, '%' and what is not printable ASCII percent-encoded (gRPC over HTTP/2, §Responses). */
export function grpcMessage(text: string): string {
  let out = ''
  for (const ch of text) {
    const c = ch.charCodeAt(0)
    if (c >= 0x20 && c <= 0x7e && ch !== '%') out += ch
    else for (const b of Buffer.from(ch)) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/**
 * A physarum error on an HTTP/2 stream: for a gRPC client a trailers-only answer (HTTP 200,
 * grpc-status and grpc-message, percent-encoded as the spec has it), else the JSON error.
 */
export function respondError(
  stream: ServerHttp2Stream,
  grpc: boolean,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {}
): void {
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR)
    return
  }
  if (grpc) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(status)),
        'grpc-message': grpcMessage(`${code}: ${message}`),
        ...extra
      },
      { endStream: true }
    )
    return
  }
  const body = errorBody(code, message)
  stream.respond({ ':status': status, 'content-type': 'application/json', ...extra })
  stream.end(body)
}

/** Request headers as they go on: the pseudo-headers rebuilt, the hop's own dropped, `te: trailers` kept. */
export function outgoingHeaders(
  method: string,
  path: string,
  authority: string,
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>
): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = endToEnd(headers)
  for (const k of Object.keys(h)) if (k.startsWith(':') || k === 'host') delete h[k]
  // The one value of TE HTTP/2 allows; gRPC servers may insist on it.
  if (typeof headers.te === 'string' && headers.te.includes('trailers')) h.te = 'trailers'
  h[':method'] = method
  h[':path'] = path
  h[':authority'] = authority
  h[':scheme'] = 'http'
  return h
}

/** Response headers or trailers as they go on: no pseudo-headers, nothing connection-specific. */
function relayed(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = endToEnd(headers)
  for (const k of Object.keys(h)) if (k.startsWith(':')) delete h[k]
  return h
}

/**
 * Relays `inbound` (a request on a server session) to `outbound` (its copy on a client session) and the answer back;
 * resolves with the status once both are closed. `extra` adds headers to the answer's head.
 */
export async function relayStream(
  inbound: ServerHttp2Stream,
  outbound: ClientHttp2Stream,
  opts: {
    grpc: boolean
    extra?: (headers: IncomingHttpHeaders) => OutgoingHttpHeaders
    /** The answer's head must begin within this long (ms), or the stream is cancelled and the client told 504. */
    headersTimeoutMs?: number
    /**
     * The request's body, kept for another attempt, and whether an answer's head is a refusal of the host's own (the
     * app never saw the request): such an answer is not relayed while the body is all kept; the relay resolves
     * REFUSED at once, with `inbound` untouched, for the next instance.
     */
    retry?: { body: ReplayableBody; refused: (headers: IncomingHttpHeaders) => boolean }
  }
): Promise<number> {
  const extra = opts.extra ?? (() => ({}))
  return await new Promise<number>(resolve => {
    let status = 0
    let trailers: OutgoingHttpHeaders | undefined
    let closed = 0
    const onClosed = (): void => {
      if (++closed === 2) resolve(status)
    }
    if (inbound.closed || inbound.destroyed) {
      // Reset while it was placed (a rapid-reset flood is made of these): it never reaches the app.
      outbound.on('error', () => {})
      outbound.close(NGHTTP2_CANCEL)
      resolve(0)
      return
    }
    const session = outbound.session
    if (session !== undefined) active.set(session, (active.get(session) ?? 0) + 1)
    if (opts.retry !== undefined) opts.retry.body.attach(outbound)
    else relayBody(inbound, outbound)
    let timedOut = false
    let refused = false
    const timer =
      opts.headersTimeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (status !== 0) return
            status = 504
            timedOut = true
            respondError(inbound, opts.grpc, 504, 'UPSTREAM_TIMEOUT', `no answer within ${opts.headersTimeoutMs} ms`)
            outbound.close(NGHTTP2_CANCEL)
          }, opts.headersTimeoutMs)
    outbound.on('response', (headers, flags) => {
      clearTimeout(timer)
      if (status !== 0) return
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0
      const retry = opts.retry
      if (retry !== undefined) {
        if (endStream && retry.body.replayable && retry.refused(headers)) {
          refused = true
          retry.body.detach()
          // The rest of a body still coming is not sent there.
          if (!outbound.closed && !outbound.destroyed) outbound.close(NGHTTP2_CANCEL)
          resolve(REFUSED)
          return
        }
        retry.body.release()
      }
      status = Number(headers[':status'] ?? 502)
      if (inbound.destroyed || inbound.closed) return
      // Trailers-only (a gRPC error): one HEADERS frame that ends the stream, as it came.
      inbound.respond(
        { ':status': status, ...relayed(headers), ...extra(headers) },
        { endStream, waitForTrailers: !endStream }
      )
      if (!endStream) relayBody(outbound, inbound)
    })
    outbound.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = relayed(t)
    })
    // The entrypoint's HTTP/2 compatibility response sends (empty) trailers of its own on the
    // stream it wraps: the relay sends the app's.
    inbound.removeAllListeners('wantTrailers')
    inbound.on('wantTrailers', () => {
      // An answer without trailers ends with an empty HEADERS frame: no trailers are still trailers.
      inbound.sendTrailers(trailers ?? {})
    })
    // Resets go the other way: a cancelled call (or a client gone) is cancelled at the app,
    // an app's reset is the client's.
    inbound.once('close', () => {
      if (refused) return
      // An answer relayed to its end (a call of the hop's own framing closes as soon as it is) leaves nothing to
      // cancel: an RST_STREAM per call would be a rapid reset to the app, whose HTTP/2 server answers a flood of them
      // with GOAWAY.
      const over = inbound.rstCode === NGHTTP2_NO_ERROR && outbound.readableEnded && outbound.writableEnded
      if (!over && !outbound.closed && !outbound.destroyed)
        outbound.close(inbound.rstCode === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : inbound.rstCode)
      onClosed()
    })
    outbound.once('close', () => {
      clearTimeout(timer)
      if (session !== undefined) active.set(session, (active.get(session) ?? 1) - 1)
      if (refused) return
      // After a timeout the client has its 504: the cancel of the app's stream is no reset of the client's.
      if (!timedOut && !inbound.closed && !inbound.destroyed) {
        if (!inbound.headersSent)
          respondError(
            inbound,
            opts.grpc,
            502,
            'UPSTREAM_FAILED',
            `the app reset the stream (code ${outbound.rstCode})`
          )
        else if (outbound.rstCode !== NGHTTP2_NO_ERROR) inbound.close(outbound.rstCode)
      }
      onClosed()
    })
    outbound.on('error', () => {})
    inbound.on('error', () => {})
  })
}

/** What relayStream resolves with for an answer that was a host's refusal, not relayed (see its `retry`). */
export const REFUSED = -1

/**
 * The request body of a stream that may go to another instance: what was read of it is kept (up to `max` bytes) until
 * an answer's head says the instance took the request (release), and written again to the next attempt's stream
 * (attach) when it was refused. Bodies larger than `max` are relayed all the same, only no longer replayable.
 */
export class ReplayableBody {
  private kept: Buffer[] = []
  private bytes = 0
  private keeping = true
  private ended = false
  private dst?: Http2Stream
  private listening = false

  constructor(
    private readonly src: Http2Stream,
    private readonly max: number
  ) {}

  /** Whether all of the body read so far is kept. */
  get replayable(): boolean {
    return this.keeping
  }

  /** The body goes to `dst` from now on: what was kept first, then the rest as it comes. */
  attach(dst: Http2Stream): void {
    this.dst = dst
    for (const c of this.kept) dst.write(c)
    if (this.ended) {
      dst.end()
      return
    }
    if (!this.listening) {
      this.listening = true
      this.src.on('data', (chunk: Buffer) => {
        this.onData(chunk)
      })
      this.src.once('end', () => {
        this.ended = true
        const d = this.dst
        if (d !== undefined && !d.destroyed && !d.writableEnded) d.end()
      })
    }
    this.src.resume()
  }

  /** The attempt was refused: nothing goes anywhere until the next attach. */
  detach(): void {
    this.dst = undefined
    this.src.pause()
  }

  /** The instance took the request: nothing more is kept. */
  release(): void {
    this.keeping = false
    this.kept = []
  }

  private onData(chunk: Buffer): void {
    if (this.keeping) {
      this.kept.push(chunk)
      this.bytes += chunk.length
      if (this.bytes > this.max) this.release()
    }
    const dst = this.dst
    if (dst === undefined || dst.destroyed || dst.writableEnded) return
    if (!dst.write(chunk)) {
      this.src.pause()
      dst.once('drain', () => {
        if (this.dst === dst) this.src.resume()
      })
    }
  }
}

/**
 * The body of one stream written on to another as it comes, with backpressure, and ended after it: what pipe() does,
 * without its listeners on both sides (a unary call relays two bodies per hop, and pipe's setup and teardown cost
 * more than the bytes). Resets and errors are the relay's own business (relayStream).
 */
function relayBody(src: Http2Stream, dst: Http2Stream): void {
  const onDrain = (): void => {
    src.resume()
  }
  src.on('data', (chunk: Buffer) => {
    if (dst.destroyed || dst.writableEnded) return
    if (!dst.write(chunk)) {
      src.pause()
      dst.once('drain', onDrain)
    }
  })
  src.once('end', () => {
    if (!dst.destroyed && !dst.writableEnded) dst.end()
  })
  // A call of the hop's own framing (./calls.ts) flows once asked to; an Http2Stream does from its data listener.
  src.resume()
}

/** Client sessions, one per key (an instance), opened on first use and dropped when they close. */
export class H2Sessions {
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>()

  /** The session of `key`, opened over the socket `open` gives when there is none (or it is closing). */
  async get(key: string, authority: string, open: () => Promise<Duplex>): Promise<ClientHttp2Session> {
    const have = this.sessions.get(key)
    if (have !== undefined) {
      const s = await have.catch(() => undefined)
      if (s !== undefined && !s.closed && !s.destroyed) return s
      if (this.sessions.get(key) === have) this.sessions.delete(key)
    }
    const p = open().then(async socket => await handshake(socket, authority))
    this.sessions.set(key, p)
    p.then(
      s => {
        const drop = (): void => {
          if (this.sessions.get(key) === p) this.sessions.delete(key)
        }
        s.once('close', drop)
        s.once('goaway', drop)
        s.on('error', drop)
      },
      () => {
        if (this.sessions.get(key) === p) this.sessions.delete(key)
      }
    )
    return await p
  }

  /** Closes the sessions of keys `keep` says no to; their streams in flight finish. */
  sweep(keep: (key: string) => boolean): void {
    for (const [key, p] of this.sessions) {
      if (keep(key)) continue
      this.sessions.delete(key)
      void p.then(
        s => s.close(),
        () => {}
      )
    }
  }

  /** Drops one session (its instance is gone). */
  forget(key: string): void {
    const p = this.sessions.get(key)
    this.sessions.delete(key)
    void p?.then(
      s => s.close(),
      () => {}
    )
  }

  /** Destroys every session: what is still in flight is reset. */
  stop(): void {
    for (const p of this.sessions.values())
      void p.then(
        s => s.destroy(),
        () => {}
      )
    this.sessions.clear()
  }
}

/** A client session over `socket`, once the server's SETTINGS came (or it failed). */
async function handshake(socket: Duplex, authority: string): Promise<ClientHttp2Session> {
  return await new Promise((resolve, reject) => {
    const s = h2connect(`http://${authority}`, { ...H2_SESSION_OPTIONS, createConnection: () => socket as never })
    const fail = (err: Error): void => {
      s.destroy()
      reject(err)
    }
    s.once('error', fail)
    s.once('close', () => {
      reject(new Error('the HTTP/2 session closed before it was set up'))
    })
    s.once('remoteSettings', () => {
      s.off('error', fail)
      s.on('error', () => {})
      // A libp2p stream closes after 120 s without traffic, and with it the session: while a
      // stream of it is open (a quiet bidi call), a PING keeps it alive. An idle session is let go.
      const keepalive = setInterval(() => {
        if ((active.get(s) ?? 0) > 0 && !s.closed && !s.destroyed) s.ping(() => {})
      }, H2_PING_MS)
      keepalive.unref()
      s.once('close', () => {
        clearInterval(keepalive)
      })
      resolve(s)
    })
  })
}

/**
 * An HTTP/1.1 request (`req`, `res`) sent on as HTTP/2 on `session` (an h2c or gRPC app
 * behind a hop that carried HTTP/1.1): its body streamed on, the answer's trailers relayed as
 * chunked trailers. Resolves with the status once the answer is over; rejects, with nothing
 * written, when the stream failed before its answer began.
 */
export async function relayH1ToH2(
  req: IncomingMessage,
  res: ServerResponse,
  session: ClientHttp2Session,
  out: { path: string; authority: string; headers: Record<string, string | string[]>; extra: Record<string, string> }
): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const method = req.method ?? 'GET'
    const headers = outgoingHeaders(method, out.path, out.authority, out.headers)
    const bodyless = method === 'GET' || method === 'HEAD'
    const stream = session.request(headers, { endStream: bodyless && !hasBody(req.headers) })
    let trailers: IncomingHttpHeaders = {}
    let status = 0
    if (!stream.writableEnded) req.pipe(stream)
    res.once('close', () => {
      if (!stream.closed) stream.close(NGHTTP2_CANCEL)
    })
    stream.on('response', h => {
      status = Number(h[':status'] ?? 502)
      res.writeHead(status, { ...relayed(h), ...out.extra })
      stream.pipe(res, { end: false })
    })
    stream.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = t
    })
    stream.once('end', () => {
      const t = relayed(trailers)
      if (Object.keys(t).length > 0) res.addTrailers(t as Record<string, string>)
      res.end()
      resolve(status)
    })
    stream.once('error', (err: Error) => {
      if (status === 0) reject(err)
      else {
        res.destroy(err)
        resolve(status)
      }
    })
    stream.once('close', () => {
      if (status === 0) reject(new Error(`the app reset the stream (code ${stream.rstCode})`))
      else if (!res.writableEnded) {
        res.destroy(new Error(`the app reset the stream (code ${stream.rstCode})`))
        resolve(status)
      }
    })
  })
}
