// The proxy's HTTP entrypoint: /<app>/<rest>?<query> goes to an instance of <app> as
// /<rest>?<query>, streamed both ways; / and /_physarum/… belong to the proxy itself.
// Retries: an unreachable host before anything was sent → the next candidate; after →
// only GET/HEAD/OPTIONS, once, within a 20 % retry budget.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { Server as NetServer } from 'node:net'
import { listenOn, onResponseOver, RequestAbort } from '../util/http.js'
import { Pool } from 'undici'
import { Writable } from 'node:stream'
import type { Agent } from '../cluster/agent.js'
import type { Logger } from '../util/log.js'
import { ForwardClient, ConnectError } from '../forward/client.js'
import { IDEMPOTENT, addForwarded, connectionLost, endToEnd, hasBody, relayHead } from '../forward/headers.js'
import { sendJsonError, VIA } from '../forward/serve.js'
import { APP_NAME_PATTERN } from '../config/schema.js'
import { Balancer, RetryBudget } from './balancer.js'
import { Placement, PlacementError, type Endpoint } from './placement.js'
import { statusJson, statusHtml } from './status.js'
import { setTimeout as sleep } from 'node:timers/promises'

const APP_RE = new RegExp(APP_NAME_PATTERN)
/** On shutdown, idle connections are closed after this long without a request coming or ending (ms). */
const QUIET_MS = 200

export interface EntrypointStats {
  onResponse?: (app: string, status: number, seconds: number) => void
  onRetry?: (app: string) => void
  onEjection?: (app: string) => void
}

export interface RecentError { at: string, app: string, status: number, message: string }

export class Entrypoint {
  private server?: Server
  private readonly budget = new RetryBudget(0.2)
  readonly recentErrors: RecentError[] = []
  private inFlight = 0
  private closing = false
  private lastActivityAt = 0

  constructor (
    private readonly components: { agent: Agent, placement: Placement, balancer: Balancer, forward: ForwardClient, log: Logger, stats?: EntrypointStats },
    private readonly init: { requestTimeoutMs: number, localPool?: (app: string) => Pool | undefined }
  ) {}

  async listen (host: string, port: number): Promise<string> {
    const server = createServer({ requestTimeout: 0, headersTimeout: 30000, keepAliveTimeout: 65000, maxHeaderSize: 32 * 1024 }, (req, res) => {
      this.lastActivityAt = Date.now()
      res.once('close', () => { this.lastActivityAt = Date.now() })
      // Shutting down: this is the last request on the connection, so that its client moves on.
      if (this.closing) res.setHeader('connection', 'close')
      // A bug on one request must not take the proxy down: a 500 for it, and a log line.
      this.handle(req, res).catch((err: Error) => {
        this.components.log.error(`request ${req.method ?? '?'} ${(req.url ?? '').slice(0, 200)} failed: ${err.message}`)
        this.error(res, '-', 500, 'INTERNAL', err.message)
      })
    })
    server.on('clientError', (err, socket) => {
      // Malformed HTTP: a 400 with the reason, never a crash.
      const code = (err as NodeJS.ErrnoException).code
      if (socket.writable && code !== 'ECONNRESET') {
        // As Node's own default answers: a client too slow to send its headers gets 408, headers too large 431.
        const status = code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
        const body = `${status.slice(4).toLowerCase()}: ${code ?? err.message}\n`
        socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
      } else socket.destroy()
    })
    const bound = await listenOn(server, host, port)
    this.server = server
    return bound
  }

  private error (res: ServerResponse, app: string, status: number, code: string, message: string): void {
    this.recentErrors.unshift({ at: new Date().toISOString(), app, status, message })
    this.recentErrors.length = Math.min(this.recentErrors.length, 20)
    sendJsonError(res, status, code, message)
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/'
    if (!url.startsWith('/')) { this.error(res, '-', 400, 'BAD_REQUEST', 'request target must be a path'); return }
    const path = url.split('?')[0]
    if (path === '/') { this.status(req, res); return }
    if (path.startsWith('/_physarum/') || path === '/_physarum') {
      // The agent's admin API answers them: /_physarum/metrics → /metrics, /_physarum/x → /v1/x.
      const name = path.slice('/_physarum/'.length)
      await this.components.agent.admin.serve(req, res, name === 'metrics' ? '/metrics' : `/v1/${name}`)
      return
    }
    const seg = url.slice(1).split(/[/?]/)[0]
    if (!APP_RE.test(seg)) {
      this.error(res, '-', 400, 'BAD_APP_NAME', `malformed app name ${JSON.stringify(seg.slice(0, 64))}: lowercase letters, digits, '.', '_', '-' (at most 63)`)
      return
    }
    let rest = url.slice(1 + seg.length)
    if (rest === '' || rest.startsWith('?')) rest = '/' + rest
    await this.forward(seg, rest, req, res)
  }

  private status (req: IncomingMessage, res: ServerResponse): void {
    const s = statusJson(this.components.agent, this.components.placement, this.recentErrors)
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

  private async forward (app: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { placement, balancer, forward, stats } = this.components
    const t0 = process.hrtime.bigint()
    const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6
    this.budget.deposit()
    this.inFlight++
    const clientGone = new RequestAbort()
    onResponseOver(req, res, () => { if (!res.writableFinished) clientGone.abort(new Error('client disconnected')) })
    const withBody = hasBody(req.headers)
    // Read now: once the client has gone, req.socket is null.
    const clientIp = req.socket?.remoteAddress
    const method = req.method ?? 'GET'
    const exclude = new Set<string>()
    let retried = false
    let coldMs = 0
    try {
      for (let attempt = 0; attempt < 4; attempt++) {
        let ep: Endpoint
        try {
          const choice = await placement.choose(app, { exclude, signal: clientGone })
          ep = choice.endpoint
          coldMs += choice.coldMs
        } catch (err) {
          if (clientGone.aborted) return
          // An app nobody knows is counted as '?': made-up names must not each add a metric series.
          if (err instanceof PlacementError) { this.error(res, app, err.status, err.status === 404 ? 'UNKNOWN_APP' : err.status === 504 ? 'COLD_START_TIMEOUT' : 'NO_INSTANCE', err.message); stats?.onResponse?.(placement.known(app) ? app : '?', err.status, ms(t0, process.hrtime.bigint()) / 1000); return }
          throw err
        }
        const tPlaced = process.hrtime.bigint()
        const headers = addForwarded(endToEnd(req.headers), { clientIp, proto: 'http', host: req.headers.host, via: VIA })
        const pool = ep.local ? this.init.localPool?.(app) : forward.pool(ep.peer, { v: 1, app, instance: ep.instance })
        if (pool === undefined) { exclude.add(ep.key); continue }
        balancer.start(ep.key)
        let sent = false
        let gone: string | undefined
        try {
          await pool.stream({
            path,
            method: method as 'GET',
            headers,
            body: withBody ? req : null,
            signal: clientGone,
            headersTimeout: this.init.requestTimeoutMs,
            bodyTimeout: this.init.requestTimeoutMs,
            opaque: res
          }, ({ statusCode, headers: upstream }) => {
            // An answer is proof of life, as good as a probe: a host too busy to answer probes in
            // time, but serving, is not taken for failed while it serves.
            if (!ep.local) this.components.agent.membership.table.heard(ep.peer, Date.now())
            const hostError = upstream['x-physarum-error']
            if (typeof hostError === 'string' && !withBody) {
              // The host no longer has that instance (or app): the app never saw this request.
              gone = hostError
              return new Writable({ write (_c, _e, cb) { cb() } })
            }
            sent = true
            const tHead = process.hrtime.bigint()
            relayHead(res, statusCode, upstream, {
              'x-physarum-instance': `${ep.instance}@${ep.peer}`,
              'server-timing': `placement;dur=${(ms(t0, tPlaced) - coldMs).toFixed(2)}, cold;dur=${coldMs.toFixed(2)}, upstream;dur=${ms(tPlaced, tHead).toFixed(2)}`
            })
            return res
          })
          if (gone !== undefined) {
            balancer.cancel(ep.key)
            exclude.add(ep.key)
            placement.forgetRecent(ep.key)
            continue
          }
          const ok = res.statusCode < 500
          if (balancer.finish(ep.key, ms(tPlaced, process.hrtime.bigint()), ok)) stats?.onEjection?.(app)
          stats?.onResponse?.(app, res.statusCode, ms(t0, process.hrtime.bigint()) / 1000)
          return
        } catch (err) {
          // A client that went away says nothing about the instance.
          if (clientGone.aborted) { balancer.cancel(ep.key); return }
          if (balancer.finish(ep.key, 0, false)) stats?.onEjection?.(app)
          if (res.headersSent || sent) { res.destroy(err as Error); stats?.onResponse?.(app, 502, ms(t0, process.hrtime.bigint()) / 1000); return }
          exclude.add(ep.key)
          if (err instanceof ConnectError) {
            placement.forgetRecent(ep.key)
            forward.forget(ep.peer, { v: 1, app, instance: ep.instance })
            continue
          }
          // A connection to the host that broke (it died) says nothing of the app: retrying
          // elsewhere only moves load the host no longer carries, so it is not charged to the
          // retry budget (which guards a struggling app against retry storms), and that host's
          // other instances sit out the retry.
          const hostLost = connectionLost(err)
          if (hostLost) for (const e of placement.endpoints(app)) if (e.peer === ep.peer) exclude.add(e.key)
          if (!retried && IDEMPOTENT.has(method) && !withBody && (hostLost || this.budget.withdraw())) {
            retried = true
            stats?.onRetry?.(app)
            continue
          }
          const message = (err as Error).message
          this.error(res, app, (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT' ? 504 : 502, 'UPSTREAM_FAILED', `instance ${ep.instance} of ${app} on ${ep.peer}: ${message}`)
          stats?.onResponse?.(app, 502, ms(t0, process.hrtime.bigint()) / 1000)
          return
        }
      }
      this.error(res, app, 502, 'UPSTREAM_FAILED', `no instance of ${app} could be reached`)
    } finally {
      this.inFlight--
    }
  }

  /**
   * Stops accepting connections and lets in-flight requests finish (up to `timeoutMs`). A
   * keep-alive client whose connection is closed under it may lose the request it is
   * sending, so connections in use are not cut: each gets one more answer, marked
   * `connection: close`, and its client reconnects (and is refused). Idle connections are
   * closed once no request has come or ended for a moment (a keep-alive client sends its
   * next request right after an answer).
   */
  async close (timeoutMs = 10000): Promise<void> {
    const s = this.server
    if (s === undefined) return
    this.server = undefined
    this.closing = true
    // net's close, not http's: since Node 19 the latter also closes idle keep-alive connections
    // at once, racing the request a client may be sending on one right then.
    const closed = new Promise<void>(resolve => { NetServer.prototype.close.call(s, () => { resolve() }) })
    const deadline = Date.now() + timeoutMs
    while ((this.inFlight > 0 || Date.now() - this.lastActivityAt < QUIET_MS) && Date.now() < deadline) await sleep(20)
    s.closeIdleConnections()
    while (this.inFlight > 0 && Date.now() < deadline) await sleep(20)
    s.closeAllConnections()
    await closed
  }
}
