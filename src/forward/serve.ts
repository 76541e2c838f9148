// Serving side of forwarding: HTTP/1.1 read from /physarum/http/1.0.0 streams and sent on
// to the local instance, bodies streamed both ways, never buffered whole. By default a byte
// pipe to pooled keep-alive connections (./pipe.ts); upgrades, CONNECT, HTTP/1.0, requests to
// h2c/gRPC instances (and every request with PHYSARUM_FORWARD_PIPE=0) go through Node's own
// HTTP server over the stream and a keep-alive undici pool; proto h2 streams are HTTP/2, and
// proto calls streams carry h2c/gRPC calls in physarum's own framing (./calls.ts).
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import {
  performServerHandshake,
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream
} from 'node:http2'
import { Call, CallSession } from './calls.js'
import { H2Sessions, isGrpc, outgoingHeaders, relayH1ToH2, relayStream, respondError } from './h2.js'
import { lpStream } from '@libp2p/utils'
import { Pool } from 'undici'
import type { Stream, Connection, Startable } from '@libp2p/interface'
import type { PhysarumNode } from '../cluster/node.js'
import { debugOn, type Logger } from '../util/log.js'
import {
  ERROR_HEADER,
  FORWARD_STATUS,
  HTTP_PROTOCOL,
  MAX_HEADER_FRAME,
  decodeHeaderFrame,
  type ForwardErrorCode,
  type HeaderFrame
} from './protocol.js'
import {
  CLOSE_GRACE_MS,
  CLOSE_POLL_MS,
  HEADER_FRAME_TIMEOUT_MS,
  INSTANCE_CONNECTIONS,
  INSTANCE_KEEPALIVE_MS,
  MAX_STREAMS,
  SERVE_HEADERS_TIMEOUT_MS,
  SERVE_KEEPALIVE_MS,
  SERVE_MAX_HEADER_BYTES,
  SERVE_PIPE,
  H2_SESSION_OPTIONS
} from './constants.js'
import { AppConnections, H1Pipe, type PipeHost } from './pipe.js'
import { isRefusal, type ForwardTarget, type Refusal, type Resolve } from './routing.js'
import { streamToDuplex, type StreamSocket } from './duplex.js'
import { IDEMPOTENT, addForwarded, appendList, connectionLost, endToEnd, hasBody, relayHead } from './headers.js'
import { hostPort, onResponseOver, RequestAbort } from '../util/http.js'
import { declaresTrailers, endWithTrailers, listValue, needsExact, relayExact, trailerSink } from './exact.js'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CONNECT_REFUSED,
  connected,
  errorBody,
  isWebSocket,
  refuseUpgrade,
  splice,
  upgradeHead,
  WS_GOING_AWAY
} from './upgrade.js'

interface SocketInfo {
  frame: HeaderFrame
  remotePeer: string
  remoteIp?: string
}
const INFO = Symbol('physarum')

export const VIA = '1.1 physarum'

/** An error answer in the one JSON shape every physarum error has: {"error": {code, message}}. */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {}
): void {
  if (res.headersSent) {
    res.destroy(new Error(message))
    return
  }
  const body = errorBody(code, message)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    via: VIA,
    ...extra
  })
  res.end(body)
}

/** The keep-alive pool to one local instance (an IPv6 host in brackets). */
export function instancePool(host: string, port: number): Pool {
  return new Pool(`http://${hostPort(host, port)}`, {
    connections: INSTANCE_CONNECTIONS,
    keepAliveTimeout: INSTANCE_KEEPALIVE_MS,
    headersTimeout: 0,
    bodyTimeout: 0
  })
}

/** A host's own answer: the status its code has; a refusal also says so in ERROR_HEADER. */
function answer(res: ServerResponse, code: ForwardErrorCode, message: string, refusal = false): void {
  sendJsonError(res, FORWARD_STATUS[code], code, message, refusal ? { [ERROR_HEADER]: code } : {})
}

export class ForwardServer implements Startable {
  private readonly server: Server
  private readonly pools = new Map<string, Pool>()
  /** Streams upgraded to WebSocket, for the 1001 a stop sends them. */
  private readonly webSockets = new Set<StreamSocket>()
  private readonly sockets = new Set<StreamSocket>()
  /** HTTP/1.1 streams on the byte pipe, and its connections to each instance. */
  private readonly pipes = new Map<StreamSocket, H1Pipe>()
  private readonly appConnections = new Map<string, AppConnections>()
  private readonly pipeHost: PipeHost
  /** HTTP/2 sessions on forwarding streams (h2c and gRPC apps). */
  private readonly h2 = new Set<ServerHttp2Session>()
  /** Streams of calls (proto calls) from proxies. */
  private readonly callSessions = new Set<CallSession>()
  /** HTTP/2 sessions to h2c and gRPC instances, one per instance. */
  private readonly appSessions = new H2Sessions()
  private started = false

  constructor(
    private readonly components: {
      node: PhysarumNode
      log: Logger
      onResponse?: (app: string, status: number) => void
      /** An upgraded connection (WebSocket) opened (+1) or closed (-1). */
      onUpgraded?: (app: string, delta: 1 | -1) => void
    },
    private readonly init: { resolve: Resolve }
  ) {
    this.pipeHost = {
      resolve: init.resolve,
      log: components.log,
      via: VIA,
      onResponse: components.onResponse,
      connections: t => this.connections(t),
      handOff: (socket, head) => {
        // Upgrades, CONNECT, HTTP/1.0 and h2c/gRPC instances: Node's HTTP server reads the stream from this head on.
        this.pipes.delete(socket)
        socket.unshift(head)
        this.server.emit('connection', socket)
        socket.resume()
      }
    }
    this.server = createServer(
      {
        requestTimeout: 0,
        headersTimeout: SERVE_HEADERS_TIMEOUT_MS,
        keepAliveTimeout: SERVE_KEEPALIVE_MS,
        maxHeaderSize: SERVE_MAX_HEADER_BYTES
      },
      (req, res) => {
        this.onRequest(req, res)
      }
    )
    // Expect: 100-continue goes on to the app, which answers it (Node's own 100 would let the client send a body the
    // app may refuse).
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res)
    })
    this.server.on('upgrade', (req: IncomingMessage, socket: StreamSocket, head: Buffer) => {
      this.onUpgrade(req, socket, head)
    })
    this.server.on('connect', (_req: IncomingMessage, socket: StreamSocket) => {
      socket.on('error', debugOn(this.components.log, 'CONNECT stream'))
      refuseUpgrade(socket, FORWARD_STATUS.NOT_SUPPORTED, 'NOT_SUPPORTED', CONNECT_REFUSED)
    })
    this.server.on('clientError', (err, socket) => {
      // Malformed HTTP on a stream: answer 400 when possible, then drop that stream only.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      else socket.destroy(err)
    })
  }

  async start(): Promise<void> {
    await this.components.node.handle(
      HTTP_PROTOCOL,
      async (stream: Stream, connection: Connection) => {
        await this.onStream(stream, connection)
      },
      { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS }
    )
    this.started = true
  }

  private async onStream(stream: Stream, connection: Connection): Promise<void> {
    let frame: HeaderFrame
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_HEADER_FRAME })
      const raw = await lp.read({ signal: AbortSignal.timeout(HEADER_FRAME_TIMEOUT_MS) })
      const decoded = decodeHeaderFrame(raw.subarray())
      if ('error' in decoded) throw new Error(decoded.error)
      frame = decoded.frame
      lp.unwrap()
    } catch (err) {
      this.components.log.debug('forwarding stream refused', {
        peer: connection.remotePeer.toString(),
        error: (err as Error).message
      })
      stream.abort(err as Error)
      return
    }
    const ip = connection.remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
    if (frame.proto === 'calls') {
      this.onCallStream(stream, frame, ip)
      return
    }
    const socket = streamToDuplex(stream, ip)
    ;(socket as unknown as Record<symbol, SocketInfo>)[INFO] = {
      frame,
      remotePeer: connection.remotePeer.toString(),
      remoteIp: ip
    }
    this.sockets.add(socket)
    socket.once('close', () => {
      this.sockets.delete(socket)
      this.pipes.delete(socket)
    })
    if (frame.proto === 'h2') this.onH2Socket(socket, frame, ip)
    else if (SERVE_PIPE) this.pipes.set(socket, new H1Pipe(socket, frame, ip, this.pipeHost))
    else this.server.emit('connection', socket)
  }

  /** A stream that carries HTTP/2 (an h2c or gRPC app's requests): one session, every request a stream of it. */
  private onH2Socket(socket: StreamSocket, frame: HeaderFrame, ip: string | undefined): void {
    const session = performServerHandshake(socket, H2_SESSION_OPTIONS)
    this.h2.add(session)
    session.once('close', () => this.h2.delete(session))
    session.on('error', debugOn(this.components.log, 'HTTP/2 session on a forwarding stream'))
    session.on('stream', (stream, headers) => {
      stream.on('error', debugOn(this.components.log, 'HTTP/2 stream'))
      this.onH2Stream(stream, headers, frame, ip)
    })
  }

  /** A stream of calls in physarum's own framing (./calls.ts): each call relayed as an HTTP/2 stream of the hop's. */
  private onCallStream(stream: Stream, frame: HeaderFrame, ip: string | undefined): void {
    const session = new CallSession(stream, 'server', debugOn(this.components.log, 'call stream'))
    this.callSessions.add(session)
    session.once('close', () => this.callSessions.delete(session))
    session.on('stream', (call: Call, headers: IncomingHttpHeaders) => {
      // A Call has the members of a server stream that the relay and respondError use.
      this.onH2Stream(call as unknown as ServerHttp2Stream, headers, frame, ip)
    })
  }

  private onH2Stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, frame: HeaderFrame, ip?: string): void {
    const grpc = isGrpc(headers)
    const path = headers[':path'] ?? '/'
    if (!path.startsWith('/')) {
      respondError(stream, grpc, 400, 'BAD_REQUEST', 'request target must be a path')
      return
    }
    const target: ForwardTarget | Refusal = this.init.resolve(frame)
    if (isRefusal(target)) {
      this.components.onResponse?.(frame.app, FORWARD_STATUS[target.code])
      respondError(stream, grpc, FORWARD_STATUS[target.code], target.code, target.message, {
        [ERROR_HEADER]: target.code
      })
      return
    }
    if (target.protocol === 'http1') {
      const message = `app ${target.app} speaks HTTP/1.1 (its Protocol): HTTP/2 to it goes by HTTP/1.1 over the hop`
      respondError(stream, grpc, FORWARD_STATUS.NOT_SUPPORTED, 'NOT_SUPPORTED', message)
      return
    }
    const done = target.begin()
    const authority = headers[':authority'] ?? target.app
    const out = addForwarded(endToEnd(headers), { clientIp: ip, host: authority, via: VIA })
    this.appSession(target)
      .then(async session => {
        const outbound = session.request(outgoingHeaders(headers[':method'] ?? 'GET', path, authority, out))
        return await relayStream(stream, outbound, { grpc, extra: () => ({ via: VIA }) })
      })
      .then(
        status => {
          done()
          this.components.onResponse?.(target.app, status)
        },
        (err: Error) => {
          done()
          const message = `instance ${target.instanceId} of ${target.app}: ${err.message}`
          this.components.onResponse?.(target.app, FORWARD_STATUS.INSTANCE_UNREACHABLE)
          respondError(stream, grpc, FORWARD_STATUS.INSTANCE_UNREACHABLE, 'INSTANCE_UNREACHABLE', message, {
            [ERROR_HEADER]: 'INSTANCE_UNREACHABLE'
          })
        }
      )
  }

  /** The HTTP/2 session to an h2c or gRPC instance (one, multiplexed). */
  private async appSession(t: ForwardTarget): Promise<ClientHttp2Session> {
    const key = hostPort(t.host, t.port)
    return await this.appSessions.get(key, key, async () => await connected(t.host, t.port))
  }

  /** An HTTP/1.1 request from the hop to an h2c or gRPC app: on as HTTP/2. */
  private h1ToH2(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    headers: Record<string, string | string[]>,
    finish: (status: number) => void
  ): void {
    this.appSession(target)
      .then(
        async session =>
          await relayH1ToH2(req, res, session, {
            path: req.url ?? '/',
            authority: req.headers.host ?? target.app,
            headers,
            extra: { via: VIA }
          })
      )
      .then(finish, (err: Error) => {
        if (res.headersSent || res.destroyed) return
        answer(res, 'UPSTREAM_FAILED', `instance ${target.instanceId} of ${target.app} failed: ${err.message}`)
        finish(FORWARD_STATUS.UPSTREAM_FAILED)
      })
  }

  private pool(t: ForwardTarget): Pool {
    const key = hostPort(t.host, t.port)
    let p = this.pools.get(key)
    if (p === undefined) {
      p = instancePool(t.host, t.port)
      this.pools.set(key, p)
    }
    return p
  }

  /** The byte pipe's connections to an instance. */
  private connections(t: ForwardTarget): AppConnections {
    const key = hostPort(t.host, t.port)
    let c = this.appConnections.get(key)
    if (c === undefined) {
      c = new AppConnections(t.host, t.port)
      this.appConnections.set(key, c)
    }
    return c
  }

  /** Closes the keep-alive pool of an instance that stopped. */
  forget(host: string, port: number): void {
    const key = hostPort(host, port)
    this.appConnections.get(key)?.close()
    this.appConnections.delete(key)
    const p = this.pools.get(key)
    this.pools.delete(key)
    this.appSessions.forget(key)
    void p?.close().catch(debugOn(this.components.log, 'close of an instance pool'))
  }

  /** An HTTP/1.1 upgrade (WebSocket): on to the instance, then bytes both ways until either side closes. */
  private onUpgrade(req: IncomingMessage, socket: StreamSocket, head: Buffer): void {
    // The HTTP server lets go of an upgraded socket, its error listener too: a reset stream
    // would otherwise be an uncaught error.
    socket.on('error', debugOn(this.components.log, 'upgraded stream'))
    const info = (socket as unknown as Record<symbol, SocketInfo | undefined>)[INFO]
    if (info === undefined || req.url === undefined || !req.url.startsWith('/')) {
      refuseUpgrade(socket, 400, 'BAD_REQUEST', 'request target must be a path')
      return
    }
    const target: ForwardTarget | Refusal = this.init.resolve(info.frame)
    if (isRefusal(target)) {
      this.components.onResponse?.(info.frame.app, FORWARD_STATUS[target.code])
      refuseUpgrade(socket, FORWARD_STATUS[target.code], target.code, target.message, { [ERROR_HEADER]: target.code })
      return
    }
    const done = target.begin()
    connected(target.host, target.port).then(
      upstream => {
        upstream.write(upgradeHead(req, req.url ?? '/', { clientIp: info.remoteIp, via: VIA }))
        if (head.length > 0) upstream.write(head)
        if (isWebSocket(req)) this.webSockets.add(socket)
        this.components.onUpgraded?.(target.app, 1)
        splice(socket, upstream, () => {
          this.webSockets.delete(socket)
          done()
          this.components.onUpgraded?.(target.app, -1)
        })
      },
      (err: Error) => {
        done()
        const message = `instance ${target.instanceId} of ${target.app}: ${err.message}`
        refuseUpgrade(socket, FORWARD_STATUS.INSTANCE_UNREACHABLE, 'INSTANCE_UNREACHABLE', message, {
          [ERROR_HEADER]: 'INSTANCE_UNREACHABLE'
        })
      }
    )
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const info = (req.socket as unknown as Record<symbol, SocketInfo | undefined>)[INFO]
    if (info === undefined) {
      answer(res, 'INTERNAL', 'no stream info')
      return
    }
    // Only a path goes on to the instance: undici refuses '*' (OPTIONS *) and, refusing it,
    // left a connection of the instance's pool unusable; 256 of them and forwarding hung.
    if (req.url === undefined || !req.url.startsWith('/')) {
      answer(res, 'BAD_REQUEST', 'request target must be a path')
      return
    }
    const target: ForwardTarget | Refusal = this.init.resolve(info.frame)
    if (isRefusal(target)) {
      this.components.onResponse?.(info.frame.app, FORWARD_STATUS[target.code])
      // The header tells the proxy that the app never saw the request: safe to retry elsewhere.
      answer(res, target.code, target.message, true)
      return
    }
    const done = target.begin()
    let finished = false
    const finish = (status: number): void => {
      if (finished) return
      finished = true
      done()
      this.components.onResponse?.(target.app, status)
    }
    const ac = new RequestAbort()
    // The client went away (stream reset): abort the request to the instance too.
    onResponseOver(req, res, () => {
      if (!res.writableFinished) ac.abort(new Error('client disconnected'))
      finish(res.statusCode)
    })
    const headers = addForwarded(endToEnd(req.headers), { clientIp: info.remoteIp, host: req.headers.host, via: VIA })
    if (target.protocol !== 'http1') {
      // HTTP/2 has no 100 Continue to wait for from the app: the body is asked for at once.
      if ((req.headers.expect ?? '').toLowerCase() === '100-continue') res.writeContinue()
      this.h1ToH2(req, res, target, headers, finish)
      return
    }
    if (needsExact(req.headers)) {
      this.exact(req, res, target, headers, ac, finish)
      return
    }
    const withBody = hasBody(req.headers)
    const send = (retry: boolean): void => {
      this.pool(target)
        .stream(
          {
            path: req.url ?? '/',
            method: req.method as 'GET',
            headers,
            body: withBody ? req : null,
            signal: ac,
            opaque: res
          },
          ({ statusCode, headers: upstream }) => {
            const extra: Record<string, string> = { via: appendList(upstream.via, VIA) }
            if (!declaresTrailers(upstream)) {
              relayHead(res, statusCode, upstream, extra)
              return res
            }
            extra.trailer = listValue(upstream.trailer)
            relayHead(res, statusCode, upstream, extra)
            return trailerSink(res)
          }
        )
        .then(({ opaque, trailers }) => {
          // A response that declared trailers was not ended by undici: it ends here, with them.
          if (opaque === res && !res.writableEnded) endWithTrailers(res, trailers)
        })
        .catch((err: Error) => {
          if (ac.aborted) return
          // A keep-alive connection the app closed just as it was reused (the app's idle timeout
          // passed, e.g. while this process was stopped): an idempotent request without a body
          // goes again, once, on a fresh connection (RFC 9112 §9.3.1).
          if (retry && !res.headersSent && !withBody && IDEMPOTENT.has(req.method ?? '') && connectionLost(err)) {
            send(false)
            return
          }
          this.components.log.debug('upstream request failed', {
            app: target.app,
            instance: target.instanceId,
            error: err.message
          })
          if ((err as { code?: string }).code === 'ECONNREFUSED') {
            // The instance is gone (its death not yet noticed): the app never saw the request, so
            // the proxy may send it to another instance, whatever its method.
            answer(
              res,
              'INSTANCE_UNREACHABLE',
              `instance ${target.instanceId} of ${target.app} refused the connection`,
              true
            )
            finish(FORWARD_STATUS.INSTANCE_UNREACHABLE)
            return
          }
          answer(res, 'UPSTREAM_FAILED', `instance ${target.instanceId} of ${target.app} failed: ${err.message}`)
          finish(FORWARD_STATUS.UPSTREAM_FAILED)
        })
    }
    send(true)
  }

  /** A request the pool cannot carry (declared trailers, Expect: 100-continue), on a connection of its own. */
  private exact(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    headers: Record<string, string | string[]>,
    ac: RequestAbort,
    finish: (status: number) => void
  ): void {
    relayExact(req, res, target, {
      path: req.url ?? '/',
      headers,
      extra: upstream => ({ via: appendList(upstream.via, VIA) }),
      signal: ac
    }).then(finish, (err: Error) => {
      if (ac.aborted) return
      const refused = (err as { code?: string }).code === 'ECONNREFUSED'
      const message = `instance ${target.instanceId} of ${target.app}: ${err.message}`
      // Nothing of the body went anywhere when the app was never reached: the proxy may try elsewhere.
      answer(res, refused ? 'INSTANCE_UNREACHABLE' : 'UPSTREAM_FAILED', message, refused)
      finish(FORWARD_STATUS[refused ? 'INSTANCE_UNREACHABLE' : 'UPSTREAM_FAILED'])
    })
  }

  /** Stops taking new streams; open ones keep serving until they close. */
  async beforeStop(): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.components.node
      .unhandle(HTTP_PROTOCOL)
      .catch(debugOn(this.components.log, 'unhandle of the forwarding protocol'))
  }

  /**
   * Closes every stream: ended first, so that the last bytes of a response still go out, then destroyed after
   * CLOSE_GRACE_MS.
   */
  async stop(): Promise<void> {
    await this.beforeStop()
    // WebSockets still open after the drain are told so (1001, going away), not cut.
    for (const s of this.webSockets) s.write(WS_GOING_AWAY)
    // HTTP/2: a GOAWAY, so that the proxy opens no more streams; those in flight finish.
    for (const s of this.h2) s.close()
    for (const s of this.callSessions) s.close()
    for (const s of this.sockets) {
      const pipe = this.pipes.get(s)
      if (pipe !== undefined) pipe.stop()
      else s.end()
    }
    const deadline = Date.now() + CLOSE_GRACE_MS
    while ((this.sockets.size > 0 || this.callSessions.size > 0) && Date.now() < deadline) await sleep(CLOSE_POLL_MS)
    for (const s of this.sockets) s.destroy()
    for (const s of this.callSessions) s.destroy()
    this.appSessions.stop()
    for (const c of this.appConnections.values()) c.close()
    this.appConnections.clear()
    await Promise.all(
      [...this.pools.values()].map(async p => {
        await p.close().catch(debugOn(this.components.log, 'close of an instance pool'))
      })
    )
    this.pools.clear()
  }
}
