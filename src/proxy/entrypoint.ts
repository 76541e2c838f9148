// The proxy's HTTP entrypoint: /<app>/<rest>?<query> goes to an instance of <app> as
// /<rest>?<query> (./request.ts serves it); / and /_physarum/… belong to the proxy itself.
// It owns the listening socket and a shutdown that loses no request.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import {
  createServer as createH2Server,
  type Http2ServerRequest,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream
} from 'node:http2'
import { Server as NetServer, type Socket } from 'node:net'
import { isGrpc, respondError } from '../forward/h2.js'
import { H2_SESSION_OPTIONS } from '../forward/constants.js'
import type { AppProtocol } from '../catalog/catalog.js'
import { listenOn } from '../util/http.js'
import type { Agent } from '../cluster/agent.js'
import { debugOn, type Logger } from '../util/log.js'
import { APP_NAME_PATTERN } from '../config/schema.js'
import type { Placement } from './placement.js'
import { isEncrypted, sendError, type Requests } from './request.js'
import { statusJson, statusHtml, type RecentErrors } from './status.js'
import { HTTP_STATUS, type ProxyErrorCode } from './errors.js'
import type { Duplex } from 'node:stream'
import { CONNECT_REFUSED, errorBody, refuseUpgrade } from '../forward/upgrade.js'
import { DRAIN_POLL_MS, HEADERS_TIMEOUT_MS, QUIET_MS, TLS_HANDSHAKE_TIMEOUT_MS } from './constants.js'
import { sniffH2 } from './sniff.js'
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls'
import type { TlsFiles } from '../config/tls.js'
import type { Startable } from '@libp2p/interface'
import { setTimeout as sleep } from 'node:timers/promises'

const APP_RE = new RegExp(APP_NAME_PATTERN)
/** An authority that names no app: an IPv4 or IPv6 literal. */
const IP_LITERAL = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]*\])$/

/**
 * The app a request's authority (Host, or HTTP/2's :authority) names, whatever its port:
 * `<app>.physarum` always, a bare `<app>` when it is an app the cluster knows (so that
 * `localhost` or a host name of the machine still means the path form).
 */
export function authorityApp(authority: string | undefined, known: (app: string) => boolean): string | undefined {
  if (authority === undefined || authority === '') return undefined
  const colon = authority.indexOf(':')
  const host = authority.startsWith('[')
    ? authority.slice(0, authority.indexOf(']') + 1)
    : colon === -1
      ? authority
      : authority.slice(0, colon)
  if (IP_LITERAL.test(host)) return undefined
  const name = host.toLowerCase()
  if (name.endsWith('.physarum')) {
    const app = name.slice(0, -'.physarum'.length)
    return APP_RE.test(app) ? app : undefined
  }
  return APP_RE.test(name) && known(name) ? name : undefined
}

/** The app that `/<app>/<rest>?<query>` names and the path on to it (`/<rest>?<query>`), or why it names none. */
function appTarget(url: string): { app: string; rest: string } | { code: ProxyErrorCode; message: string } {
  if (!url.startsWith('/')) return { code: 'BAD_REQUEST', message: 'request target must be a path' }
  // Up to the first '/' or '?' (a scan: no array of every segment per request).
  let end = 1
  while (end < url.length) {
    const c = url.charCodeAt(end)
    if (c === 47 || c === 63) break
    end++
  }
  const app = url.slice(1, end)
  if (!APP_RE.test(app)) {
    const message = `malformed app name ${JSON.stringify(app.slice(0, 64))}: lowercase letters, digits, '.', '_', '-' (at most 63)`
    return { code: 'BAD_APP_NAME', message }
  }
  let rest = url.slice(1 + app.length)
  if (rest === '' || rest.startsWith('?')) rest = '/' + rest
  return { app, rest }
}

/**
 * The answer to a method Node's HTTP parser does not know (it knows every registered one, WebDAV's included): 501 with
 * the method named, as RFC 9110 §15.6.2 has it for a method a server does not recognize; undefined: no such
 * request line.
 */
export function methodRefusal(raw: Buffer | undefined): string | undefined {
  // Only a well-formed request line: anything else is malformed (400).
  const line = raw?.subarray(0, 8192).toString('latin1') ?? ''
  const method = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) [^\s]+ HTTP\/1\.[01]\r?\n/.exec(line)?.[1]
  if (method === undefined) return undefined
  const message = `method ${method} is not supported: physarum forwards the methods HTTP/1.1 registers`
  const body = errorBody('NOT_SUPPORTED', message)
  return `HTTP/1.1 501 Not Implemented\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
}

export class Entrypoint implements Startable {
  private server?: Server
  private readonly h2Sessions = new Set<ServerHttp2Session>()
  private secure?: TlsServer
  private closed?: Promise<void>
  private closing = false
  private lastActivityAt = 0
  /** HOST:PORT it listens on, once started. */
  address?: string

  constructor(
    private readonly components: {
      agent: Agent
      placement: Placement
      requests: Requests
      recentErrors: RecentErrors
      log: Logger
      /** What an app speaks, when this proxy's catalog says. */
      protocol?: (app: string) => AppProtocol | undefined
    },
    private readonly init: { host: string; port: number; drainTimeoutMs: number; tls?: TlsFiles }
  ) {}

  /** Requests being served now. */
  get inFlight(): number {
    return this.components.requests.inFlight
  }

  async start(): Promise<void> {
    const { host, port } = this.init
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.lastActivityAt = Date.now()
      res.once('close', () => {
        this.lastActivityAt = Date.now()
      })
      // Shutting down: this is the last request on the connection, so that its client moves on.
      if (this.closing) res.setHeader('connection', 'close')
      // A bug on one request must not take the proxy down: a 500 for it, and a log line.
      this.handle(req, res).catch((err: Error) => {
        this.components.log.error(
          `request ${req.method ?? '?'} ${(req.url ?? '').slice(0, 200)} failed: ${err.message}`
        )
        this.error(res, '-', 'INTERNAL', err.message)
      })
    }
    const server = createServer(
      { requestTimeout: 0, headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 65000, maxHeaderSize: 32 * 1024 },
      onRequest
    )
    // HTTP/2 (h2c with prior knowledge) on the same port: a connection whose first bytes are
    // HTTP/2's preface goes to an HTTP/2 server, any other to the HTTP/1.1 one as before.
    const h2 = createH2Server(H2_SESSION_OPTIONS)
    h2.on('request', (req, res) => {
      // A macrotask later, so that a stream the client reset in the same burst (CVE-2023-44487's rapid reset) is seen
      // closed and costs nothing more: served at once, every such stream queued a request the pools then worked off.
      setImmediate(() => {
        if (req.stream.closed || req.stream.destroyed) return
        onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse)
      })
    })
    // HTTP/2's CONNECT (RFC 9113 §8.5): the same 501 and reason as HTTP/1.1's, not Node's bare 405.
    h2.on('connect', (req: Http2ServerRequest) => {
      respondError(req.stream, false, HTTP_STATUS.NOT_SUPPORTED, 'NOT_SUPPORTED', CONNECT_REFUSED)
    })
    // A request that goes on as HTTP/2 (a gRPC call, an h2c app's request) is relayed from its stream at once: the
    // compatibility request and response Node builds for every stream (two objects, a dozen listeners) would go unused.
    // Any other stream gets them, by the listener that 'request' installed (if Node installed none, every stream goes
    // the usual way).
    const compat = h2.listeners('stream') as Array<(...args: unknown[]) => void>
    if (compat.length > 0) h2.removeAllListeners('stream')
    if (compat.length > 0)
      h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
        const direct = this.directH2(headers)
        if (direct === undefined) {
          for (const l of compat) l.call(h2, stream, headers, ...rest)
          return
        }
        this.lastActivityAt = Date.now()
        stream.once('close', () => {
          this.lastActivityAt = Date.now()
        })
        // As for the others, a macrotask later (rapid reset).
        setImmediate(() => {
          if (stream.closed || stream.destroyed) return
          const grpc = isGrpc(headers)
          this.components.requests
            .forwardH2(direct.app, direct.path, stream, headers, {
              ip: stream.session?.socket?.remoteAddress,
              proto:
                (stream.session?.socket as { encrypted?: boolean } | undefined)?.encrypted === true ? 'https' : 'http'
            })
            .catch((err: Error) => {
              this.components.log.error(`request ${direct.path.slice(0, 200)} to ${direct.app} failed: ${err.message}`)
              respondError(stream, grpc, 500, 'INTERNAL', err.message)
            })
        })
      })
    h2.on('session', session => {
      this.h2Sessions.add(session)
      session.once('close', () => this.h2Sessions.delete(session))
      session.on('error', debugOn(this.components.log, 'HTTP/2 session'))
    })
    const h1 = server.listeners('connection') as Array<(socket: Socket) => void>
    server.removeAllListeners('connection')
    const tls = this.init.tls
    if (tls !== undefined) {
      // TLS: HTTP/2 or HTTP/1.1 as ALPN chose (HTTP/1.1 for a client that offers neither).
      const secure = createTlsServer({
        ...tls,
        ALPNProtocols: ['h2', 'http/1.1'],
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS
      })
      secure.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol === 'h2') h2.emit('connection', socket)
        else for (const l of h1) l.call(server, socket)
      })
      secure.on('tlsClientError', debugOn(this.components.log, 'TLS handshake'))
      this.secure = secure
      server.on('connection', (socket: Socket) => secure.emit('connection', socket))
    } else
      server.on('connection', (socket: Socket) => {
        sniffH2(socket, HEADERS_TIMEOUT_MS, isH2 => {
          if (isH2) h2.emit('connection', socket)
          else for (const l of h1) l.call(server, socket)
        })
      })
    // Expect: 100-continue goes on to the app, which answers it: it may refuse the body before it is sent.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      server.emit('request', req, res)
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.lastActivityAt = Date.now()
      // The HTTP server lets go of an upgraded socket, its error listener too.
      socket.on('error', debugOn(this.components.log, 'upgraded connection'))
      const t = appTarget(req.url ?? '/')
      if ('code' in t) {
        refuseUpgrade(socket, HTTP_STATUS[t.code], t.code, t.message)
        return
      }
      this.components.requests.upgrade(t.app, t.rest, req, socket, head).catch((err: Error) => {
        this.components.log.error(`upgrade ${(req.url ?? '').slice(0, 200)} failed: ${err.message}`)
        socket.destroy()
      })
    })
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', debugOn(this.components.log, 'CONNECT connection'))
      refuseUpgrade(socket, HTTP_STATUS.NOT_SUPPORTED, 'NOT_SUPPORTED', CONNECT_REFUSED)
    })
    server.on('clientError', (err, socket) => {
      // Malformed HTTP: a 400 with the reason, never a crash.
      const code = (err as NodeJS.ErrnoException).code
      if (socket.writable && code !== 'ECONNRESET') {
        // As Node's own default answers: a client too slow to send its headers gets 408, headers too large 431.
        const refusal =
          code === 'HPE_INVALID_METHOD' ? methodRefusal((err as { rawPacket?: Buffer }).rawPacket) : undefined
        if (refusal !== undefined) {
          socket.end(refusal)
          return
        }
        const status =
          code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : code === 'HPE_HEADER_OVERFLOW'
              ? '431 Request Header Fields Too Large'
              : '400 Bad Request'
        const body = `${status.slice(4).toLowerCase()}: ${code ?? err.message}\n`
        socket.end(
          `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
        )
      } else socket.destroy()
    })
    this.address = await listenOn(server, host, port, { what: 'the proxy', hint: 'choose another with --port' })
    this.server = server
  }

  /** Whether it speaks TLS. */
  get encrypted(): boolean {
    return this.secure !== undefined
  }

  /** A new certificate (SIGHUP): the next connections get it, those open keep theirs. */
  setTls(files: TlsFiles): void {
    this.secure?.setSecureContext(files)
  }

  private error(res: ServerResponse, app: string, code: ProxyErrorCode, message: string): void {
    sendError(res, this.components.recentErrors, app, code, message)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/'
    const h2 = req.httpVersionMajor === 2
    const byAuthority = authorityApp(h2 ? (req.headers[':authority'] as string | undefined) : req.headers.host, app =>
      this.components.placement.known(app)
    )
    if (byAuthority !== undefined) {
      await this.forward(byAuthority, url, req, res)
      return
    }
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (path === '/') {
      this.status(req, res)
      return
    }
    if (path.startsWith('/_physarum/') || path === '/_physarum') {
      // The agent's admin API answers them: /_physarum/metrics → /metrics, /_physarum/x → /v1/x.
      const name = path.slice('/_physarum/'.length)
      await this.components.agent.admin.serve(req, res, name === 'metrics' ? '/metrics' : `/v1/${name}`)
      return
    }
    const t = appTarget(url)
    if ('code' in t) {
      if (h2 && isGrpc(req.headers)) {
        this.components.recentErrors.record('-', HTTP_STATUS[t.code], t.message)
        respondError((req as unknown as Http2ServerRequest).stream, true, HTTP_STATUS[t.code], t.code, t.message)
      } else this.error(res, '-', t.code, t.message)
      return
    }
    await this.forward(t.app, t.rest, req, res)
  }

  /**
   * The app and path of an HTTP/2 request that goes on as HTTP/2 (forward's test), found as handle() would; undefined
   * for anything else (the proxy's own pages, an error, CONNECT, Expect, an HTTP/1.1 app), which takes the usual way.
   */
  private directH2(headers: IncomingHttpHeaders): { app: string; path: string } | undefined {
    const method = headers[':method']
    const url = headers[':path']
    if (method === 'CONNECT' || headers.expect !== undefined || url === undefined) return undefined
    const known = (app: string): boolean => this.components.placement.known(app)
    let app = authorityApp(headers[':authority'], known)
    let path = url
    if (app === undefined) {
      const p = url.split('?')[0]
      if (p === '/' || p === '/_physarum' || p.startsWith('/_physarum/')) return undefined
      const t = appTarget(url)
      if ('code' in t) return undefined
      app = t.app
      path = t.rest
    }
    if (!isGrpc(headers) && (this.components.protocol?.(app) ?? 'http1') === 'http1') return undefined
    return { app, path }
  }

  /**
   * HTTP/2 to an h2c or gRPC app (or any gRPC call) goes on as HTTP/2; everything else as
   * HTTP/1.1 (the host speaks HTTP/2 to an h2c app whatever the hop carried).
   */
  private forward(app: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Not async: the request's own promise, without one more layer (and its microtasks) per request.
    if (
      req.httpVersionMajor === 2 &&
      (isGrpc(req.headers) || (this.components.protocol?.(app) ?? 'http1') !== 'http1')
    ) {
      const stream = (req as unknown as Http2ServerRequest).stream
      return this.components.requests.forwardH2(app, path, stream, req.headers, {
        ip: req.socket?.remoteAddress,
        proto: isEncrypted(req) ? 'https' : 'http'
      })
    }
    return this.components.requests.forward(app, path, req, res)
  }

  private status(req: IncomingMessage, res: ServerResponse): void {
    const s = statusJson(this.components.agent, this.components.placement, this.components.recentErrors.list)
    if ((req.headers.accept ?? '').includes('application/json')) {
      const body = JSON.stringify(s, null, 2) + '\n'
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
      return
    }
    const body = statusHtml(s)
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }

  /**
   * Drain: stops accepting connections and lets in-flight requests finish (up to
   * drainTimeoutMs). A keep-alive client whose connection is closed under it may lose the
   * request it is sending, so connections in use are not cut: each gets one more answer,
   * marked `connection: close`, and its client reconnects (and is refused). Idle connections
   * are closed once no request has come or ended for a moment (a keep-alive client sends its
   * next request right after an answer).
   */
  async beforeStop(): Promise<void> {
    const s = this.server
    if (s === undefined || this.closing) return
    this.closing = true
    // net's close, not http's: since Node 19 the latter also closes idle keep-alive connections
    // at once, racing the request a client may be sending on one right then.
    this.closed = new Promise<void>(resolve => {
      NetServer.prototype.close.call(s, () => {
        resolve()
      })
    })
    // HTTP/2 clients get a GOAWAY: no new streams on the session, those in flight finish.
    for (const session of this.h2Sessions) session.close()
    const deadline = Date.now() + this.init.drainTimeoutMs
    while ((this.inFlight > 0 || Date.now() - this.lastActivityAt < QUIET_MS) && Date.now() < deadline)
      await sleep(DRAIN_POLL_MS)
    s.closeIdleConnections()
    while (this.inFlight > 0 && Date.now() < deadline) await sleep(DRAIN_POLL_MS)
  }

  /** Closes every connection left (after beforeStop: those whose requests outlived the drain). */
  async stop(): Promise<void> {
    const s = this.server
    if (s === undefined) return
    this.server = undefined
    if (this.closed === undefined) {
      this.closing = true
      this.closed = new Promise<void>(resolve => {
        NetServer.prototype.close.call(s, () => {
          resolve()
        })
      })
    }
    s.closeAllConnections()
    for (const session of this.h2Sessions) session.destroy()
    this.components.requests.closeUpgraded()
    this.components.requests.stop()
    await this.closed
  }
}
