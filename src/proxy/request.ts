// What happens to one request through the proxy (the path, step by step, is listed in
// ../forward/routing.ts): placement picks an instance, the request goes to it over a pooled
// stream, and each attempt ends in an Attempt that says what happened; the loop decides
// whether another instance is tried, and the request ends in one Outcome, which is what
// the client gets and what the metrics count. Retries: a host that refused (the app never
// saw the request) or could not be reached → the next candidate, whatever the method; after
// the request was sent, only GET/HEAD/OPTIONS without a body, as the app's traffic policy
// says (Apps.*.Retry: how many tries, on errors and/or 5xx), within its retry budget (a host
// that died is not charged to it) and its RequestTimeoutS for all tries together.
import { Writable, type Duplex } from 'node:stream'
import { peerIdFromString } from '@libp2p/peer-id'
import { connected, isWebSocket, refuseUpgrade, splice, upgradeHead, WS_GOING_AWAY } from '../forward/upgrade.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import {
  H2Sessions,
  isGrpc,
  outgoingHeaders,
  REFUSED,
  relayStream,
  ReplayableBody,
  respondError
} from '../forward/h2.js'
import type { Pool } from 'undici'
import { hostPort, onResponseOver, RequestAbort } from '../util/http.js'
import { ConnectError, type ForwardClient } from '../forward/client.js'
import { ERROR_HEADER } from '../forward/protocol.js'
import { IDEMPOTENT, addForwarded, connectionLost, endToEnd, hasBody, relayHead } from '../forward/headers.js'
import { sendJsonError, VIA } from '../forward/serve.js'
import { declaresTrailers, endWithTrailers, listValue, needsExact, relayExact, trailerSink } from '../forward/exact.js'
import { HTTP_STATUS, PlacementError, type ProxyErrorCode } from './errors.js'
import { RetryBudget, type Balancer } from './balancer.js'
import type { Endpoint, Placement } from './placement.js'
import type { RecentErrors } from './status.js'
import { MAX_ATTEMPTS } from './constants.js'
import { H2_REPLAY_MAX_BYTES } from '../forward/constants.js'
import type { FastPathClient, FastTarget } from '../fastpath/client.js'

/** How one attempt on one instance ended. */
export type Attempt =
  /** The instance's answer was relayed (whatever its status). */
  | { kind: 'served'; status: number }
  /** The client went away: says nothing about the instance. */
  | { kind: 'client-gone' }
  /** The host answered that the app never saw the request (gone, draining, unknown here). */
  | { kind: 'refused'; code: string }
  /** No stream to the host (no connection to a loopback instance) could be opened: nothing of the request was sent. */
  | { kind: 'unreachable'; error: Error }
  /**
   * It failed before any of the answer was relayed; `hostLost`: the connection to the host broke (`direct`: to the
   * instance itself, over loopback: that says nothing of its host's other instances).
   */
  | { kind: 'failed'; error: Error; hostLost: boolean; direct?: boolean }
  /** It failed after the answer's head was relayed: the response can only be cut short. */
  | { kind: 'broken'; error: Error }
  /** The app answered 5xx and the policy retries that: the answer was not relayed. */
  | { kind: 'app-5xx'; status: number }

/** How the request ended. */
export type Outcome =
  | { kind: 'served'; status: number }
  | { kind: 'client-gone' }
  /** The proxy answered with an error of its own. */
  | { kind: 'error'; code: ProxyErrorCode; message: string; status: number }
  /** The response was cut short (it had begun). */
  | { kind: 'cut'; error: Error }

export interface RequestStats {
  onResponse?: (app: string, status: number, seconds: number) => void
  onRetry?: (app: string) => void
  onEjection?: (app: string) => void
  /** An upgraded connection (WebSocket) opened (+1) or closed (-1). */
  onUpgraded?: (app: string, delta: 1 | -1) => void
  /** A request (an attempt) sent on to an instance: straight over loopback, or over a libp2p stream. */
  onForward?: (app: string, path: 'loopback' | 'libp2p') => void
}

/** A way straight to an instance over loopback: one of this proxy's own, or a same-host allocator's (the fast path). */
export interface Direct {
  pool: Pool
  host: string
  port: number
}

/** An app's traffic policy (its catalog keys, the proxy's own values where it sets none). */
export interface TrafficPolicy {
  /** Until the answer begins, all tries together (ms). */
  requestTimeoutMs: number
  /** One try, until its answer begins or between two pieces of its body (ms). */
  tryTimeoutMs: number
  /** Tries in all, the first included. */
  attempts: number
  /** What is retried once an idempotent request without a body was sent. */
  retryOn: ReadonlyArray<'error' | '5xx'>
  /** Retries per request allowed (0.2: 20 %). */
  budgetRatio: number
}

export interface RequestComponents {
  /** The traffic policy of an app. */
  traffic: (app: string) => TrafficPolicy
  placement: Placement
  balancer: Balancer
  forward: ForwardClient
  recentErrors: RecentErrors
  /** An answer from a host is proof of life, as good as a probe. */
  heard?: (peer: string) => void
  /** The pool of one of this proxy's own instances (server mode, registered), by its ID. */
  local?: (app: string, instance: string) => Direct | undefined
  /** The local fast path: the instances of same-host allocators, straight over loopback (../fastpath/client.ts). */
  fastPath?: Pick<FastPathClient, 'target' | 'begin' | 'forget'>
  stats?: RequestStats
}

/** One request while it is served: what every attempt reads. */
interface Exchange {
  app: string
  path: string
  req: IncomingMessage
  res: ServerResponse
  method: string
  withBody: boolean
  /** Declared trailers or Expect: 100-continue: sent on a connection of its own (../forward/exact.ts). */
  exact: boolean
  /** The client's scheme, for X-Forwarded-Proto. */
  proto: 'http' | 'https'
  clientGone: RequestAbort
  /** Read at the start: once the client has gone, req.socket is null. */
  clientIp?: string
  /** performance.now() at the start (ms): a double, not a BigInt per reading as hrtime.bigint() gives. */
  t0: number
  coldMs: number
}

const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6

/** What goes on to the instance of a request's headers: the end-to-end ones, with X-Forwarded-* and Via added. */
const forwardedHeaders = (x: Exchange): Record<string, string | string[]> =>
  addForwarded(endToEnd(x.req.headers), { clientIp: x.clientIp, proto: x.proto, host: x.req.headers.host, via: VIA })

/** What an attempt of reach() returns when the instance did not take the exchange: the next one is picked. */
const SKIP = Symbol('skip')

/** Whether a connection to a loopback instance was refused (nothing listens: it died), however undici wraps it. */
function refusedConnect(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | undefined
  return e?.code === 'ECONNREFUSED' || e?.cause?.code === 'ECONNREFUSED'
}

/** The most of an answer's head read before it is judged (bytes): as the entrypoint's own header limit. */
const MAX_ANSWER_HEAD = 32 * 1024

/**
 * The bytes of an upgrade's answer up to the end of its head (and whatever came with them),
 * with the stream paused there; 'closed' when it ended first, 'timeout' after `timeoutMs`.
 */
async function answerHead(upstream: Duplex, timeoutMs: number): Promise<Buffer | 'closed' | 'timeout'> {
  return await new Promise(resolve => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (v: Buffer | 'closed' | 'timeout'): void => {
      clearTimeout(timer)
      upstream.off('data', onData)
      upstream.off('close', onClose)
      upstream.pause()
      resolve(v)
    }
    const onData = (c: Buffer): void => {
      chunks.push(c)
      size += c.length
      const all = Buffer.concat(chunks)
      if (all.indexOf('\r\n\r\n') !== -1 || size > MAX_ANSWER_HEAD) done(all)
    }
    const onClose = (): void => {
      done('closed')
    }
    const timer = setTimeout(() => {
      done('timeout')
    }, timeoutMs)
    upstream.on('data', onData)
    upstream.once('close', onClose)
  })
}

/** Whether an answer's head is a host's own refusal (the app never saw the upgrade), not the app's. */
function refusedByHost(answer: Buffer): boolean {
  const head = answer.subarray(0, answer.indexOf('\r\n\r\n')).toString('latin1')
  return !head.startsWith('HTTP/1.1 101') && HOST_REFUSAL.test(head)
}
const HOST_REFUSAL = new RegExp(`^${ERROR_HEADER}:`, 'im')

/** Whether the client's connection is TLS (X-Forwarded-Proto https). */
export function isEncrypted(req: IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean } | null)?.encrypted === true
}

/** Answers with an error of the proxy's own, and keeps it for the status page. */
export function sendError(
  res: ServerResponse,
  recent: RecentErrors,
  app: string,
  code: ProxyErrorCode,
  message: string,
  status = HTTP_STATUS[code]
): void {
  recent.record(app, status, message)
  sendJsonError(res, status, code, message)
}

export class Requests {
  /**
   * One retry budget per app that reached an instance (so bounded by the apps that really
   * run: a made-up name never gets one).
   */
  private readonly budgets = new Map<string, RetryBudget>()
  /** Requests being served now, and upgraded connections open. */
  inFlight = 0
  /** Upgraded client connections, and whether each is a WebSocket. */
  private readonly upgraded = new Map<Duplex, boolean>()
  /** HTTP/2 sessions to this proxy's own server-mode instance (an h2c or gRPC app). */
  private readonly localH2 = new H2Sessions()

  constructor(private readonly components: RequestComponents) {}

  /**
   * The chosen instance straight over loopback, when it can be: one of this proxy's own (server mode, registered), or
   * one of a same-host allocator's that speaks what this request needs (the local fast path, `h2`: HTTP/2); else
   * undefined: over libp2p (an own instance that is gone: not at all). Placement chose it either way.
   */
  private direct(app: string, ep: Endpoint, h2: boolean): Direct | FastTarget | undefined {
    if (ep.local) return this.components.local?.(app, ep.instance)
    const t = this.components.fastPath?.target(ep.peer, app, ep.instance)
    return t !== undefined && (t.protocol !== 'http1') === h2 ? t : undefined
  }

  /** Counts a request sent to a same-host allocator's instance for its next sync (none for an own one). */
  private begin(ep: Endpoint, d: Direct | FastTarget | undefined): (() => void) | undefined {
    return d !== undefined && !ep.local ? this.components.fastPath?.begin(d as FastTarget) : undefined
  }

  /** An instance that took no connection: the fast path stops using it, and the libp2p pool to its host is redone. */
  private forget(app: string, ep: Endpoint): void {
    if (ep.local) return
    this.components.forward.forget(ep.peer, { v: 1, app, instance: ep.instance })
    this.components.fastPath?.forget(ep.peer, ep.instance)
  }

  private budget(app: string, ratio: number): RetryBudget {
    let b = this.budgets.get(app)
    if (b === undefined) {
      b = new RetryBudget(ratio)
      this.budgets.set(app, b)
    }
    return b
  }

  /** Serves `path` of `app` to the client: forwards it, answers it, counts it. */
  async forward(app: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const clientGone = new RequestAbort()
    onResponseOver(req, res, () => {
      // Not ended: HTTP/2's compatibility response says finished on a stream the client reset.
      if (!res.writableFinished || !res.writableEnded) clientGone.abort(new Error('client disconnected'))
    })
    const x: Exchange = {
      app,
      path,
      req,
      res,
      method: req.method ?? 'GET',
      withBody: hasBody(req.headers),
      exact: needsExact(req.headers),
      proto: isEncrypted(req) ? 'https' : 'http',
      clientGone,
      clientIp: req.socket?.remoteAddress,
      t0: performance.now(),
      coldMs: 0
    }
    this.inFlight++
    try {
      this.settle(x, await this.attempts(x))
    } finally {
      this.inFlight--
    }
  }

  /**
   * The first instance `open` reaches, of those placement picks in turn (MAX_ATTEMPTS at most): one whose host or
   * loopback address cannot be reached (`open` throws: its pools are redone too), or that did not take the exchange
   * (`open` returns SKIP), is excluded and the next one is picked. For the exchanges that are tried once the instance
   * has them (an upgrade, an HTTP/2 request): a request's retries are in attempts().
   */
  private async reach<T>(
    app: string,
    gone: RequestAbort,
    open: (ep: Endpoint) => Promise<T | typeof SKIP>
  ): Promise<{ ep: Endpoint; value: T } | { refusal: PlacementError } | 'gone' | 'none'> {
    const { placement } = this.components
    const exclude = new Set<string>()
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      let ep: Endpoint
      try {
        ep = (await placement.choose(app, { exclude, signal: gone })).endpoint
      } catch (err) {
        if (gone.aborted) return 'gone'
        if (err instanceof PlacementError) return { refusal: err }
        throw err
      }
      let value: T | typeof SKIP
      try {
        value = await open(ep)
      } catch {
        value = SKIP
        this.forget(app, ep)
      }
      if (value !== SKIP) return { ep, value }
      exclude.add(ep.key)
      placement.forgetRecent(ep.key)
    }
    return 'none'
  }

  /**
   * An HTTP/1.1 upgrade (WebSocket): placed like a request, then the head goes on to the
   * instance (over a stream of its own, or straight to an instance on this host) and the
   * bytes flow both ways until either side closes. One attempt: once the head is on its way
   * nothing can be sent again. An open connection counts as a request in flight.
   */
  async upgrade(app: string, path: string, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { placement, forward, recentErrors, stats } = this.components
    const gone = new RequestAbort()
    const onGone = (): void => {
      gone.abort(new Error('client disconnected'))
    }
    socket.once('close', onGone)
    const refuse = (code: ProxyErrorCode, message: string, status = HTTP_STATUS[code]): void => {
      socket.off('close', onGone)
      recentErrors.record(app, status, message)
      stats?.onResponse?.(placement.known(app) ? app : '?', status, 0)
      refuseUpgrade(socket, status, code, message)
    }
    // As for a request: a host that cannot be reached, or that answers that the app never saw
    // the upgrade (its instance gone, draining), is no answer for the client: the next one is tried.
    const got = await this.reach(app, gone, async ep => {
      const local = this.direct(app, ep, false)
      const upstream =
        local !== undefined
          ? await connected(local.host, local.port)
          : await forward.open(peerIdFromString(ep.peer), { v: 1, app, instance: ep.instance })
      stats?.onForward?.(app, local !== undefined ? 'loopback' : 'libp2p')
      const end = this.begin(ep, local)
      upstream.on('error', () => {})
      upstream.write(
        upgradeHead(req, path, {
          clientIp: req.socket?.remoteAddress,
          proto: isEncrypted(req) ? 'https' : 'http',
          via: VIA
        })
      )
      if (head.length > 0) upstream.write(head)
      const answer = await answerHead(upstream, this.components.traffic(app).tryTimeoutMs)
      if (answer === 'closed' || (typeof answer !== 'string' && refusedByHost(answer))) {
        end?.()
        upstream.destroy()
        return SKIP
      }
      return { upstream, answer, end }
    })
    if (got === 'gone') return
    if (got === 'none') {
      refuse('NO_REACHABLE_INSTANCE', `no instance of ${app} took the upgrade`)
      return
    }
    if ('refusal' in got) {
      refuse(got.refusal.code, got.refusal.message, got.refusal.status)
      return
    }
    const { ep } = got
    const { upstream, answer, end } = got.value
    if (answer === 'timeout') {
      end?.()
      upstream.destroy()
      refuse('UPSTREAM_TIMEOUT', `instance ${ep.instance} of ${app} on ${ep.peer} did not answer the upgrade`)
      return
    }
    socket.off('close', onGone)
    if (gone.aborted) {
      end?.()
      upstream.destroy()
      return
    }
    socket.write(answer)
    this.inFlight++
    this.upgraded.set(socket, isWebSocket(req))
    stats?.onUpgraded?.(app, 1)
    splice(socket, upstream, () => {
      end?.()
      this.inFlight--
      this.upgraded.delete(socket)
      stats?.onUpgraded?.(app, -1)
    })
  }

  /**
   * An HTTP/2 request to an h2c or gRPC app (and any gRPC call): placed like a request, then
   * relayed as HTTP/2 on the instance's session (over a stream of the hop whose frame says
   * h2), headers, bodies both ways, trailers and resets (a cancelled call or a client gone
   * resets the app's stream; grpc-timeout goes on as it came). Tried elsewhere while no
   * session to an instance can be had, and when a host refuses the request before its app saw it
   * (NO_INSTANCE, DRAINING…: its body, up to H2_REPLAY_MAX_BYTES, is kept until an instance took
   * it, and sent again). Errors before the app are gRPC statuses (trailers-only) for gRPC clients,
   * JSON for others.
   */
  async forwardH2(
    app: string,
    path: string,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    client: { ip?: string; proto: 'http' | 'https' }
  ): Promise<void> {
    const { placement, forward, recentErrors, stats, balancer } = this.components
    const grpc = isGrpc(headers)
    const t0 = process.hrtime.bigint()
    const seconds = (): number => ms(t0, process.hrtime.bigint()) / 1000
    const gone = new RequestAbort()
    stream.once('close', () => {
      gone.abort(new Error('client disconnected'))
    })
    const fail = (code: ProxyErrorCode, message: string, status = HTTP_STATUS[code]): void => {
      recentErrors.record(app, status, message)
      stats?.onResponse?.(placement.known(app) ? app : '?', status, seconds())
      respondError(stream, grpc, status, code, message)
    }
    const authority = headers[':authority'] ?? app
    const method = headers[':method'] ?? 'GET'
    this.inFlight++
    try {
      const body = new ReplayableBody(stream, H2_REPLAY_MAX_BYTES)
      // The relay is part of an attempt: a host's own refusal (the app never saw the request,
      // x-physarum-error) is known only from its answer's head, and then the next instance is tried.
      const got = await this.reach(app, gone, async ep => {
        const local = this.direct(app, ep, true)
        if (ep.local && local === undefined) throw new Error(`no local instance of ${app}`)
        const session =
          local !== undefined
            ? await this.localSession(local)
            : await forward.session(ep.peer, { v: 1, app, instance: ep.instance })
        if (gone.aborted) return 'gone' as const
        const out = addForwarded(endToEnd(headers), {
          clientIp: client.ip,
          proto: client.proto,
          host: authority,
          via: VIA
        })
        const outbound = session.request(outgoingHeaders(method, path, authority, out))
        stats?.onForward?.(app, local !== undefined ? 'loopback' : 'libp2p')
        const end = this.begin(ep, local)
        const tPlaced = process.hrtime.bigint()
        balancer.start(ep.key)
        let status: number
        try {
          status = await relayStream(stream, outbound, {
            grpc,
            extra: () => ({ 'x-physarum-instance': `${ep.instance}@${ep.peer}` }),
            // gRPC has its own deadline (grpc-timeout), and a streaming call's answer may rightly begin late.
            headersTimeoutMs: grpc ? undefined : this.components.traffic(app).requestTimeoutMs,
            retry: { body, refused: h => typeof h[ERROR_HEADER] === 'string' }
          })
        } finally {
          end?.()
        }
        if (status === REFUSED) {
          balancer.cancel(ep.key)
          return SKIP
        }
        return { status, tPlaced }
      })
      if (got === 'gone') return
      if (got === 'none') {
        fail('NO_REACHABLE_INSTANCE', `no instance of ${app} could be reached`)
        return
      }
      if ('refusal' in got) {
        fail(got.refusal.code, got.refusal.message, got.refusal.status)
        return
      }
      if (got.value === 'gone') return
      const { ep } = got
      const { status, tPlaced } = got.value
      if (balancer.finish(ep.key, ms(tPlaced, process.hrtime.bigint()), status > 0 && status < 500))
        stats?.onEjection?.(app)
      stats?.onResponse?.(app, status === 0 ? HTTP_STATUS.CLIENT_GONE : status, seconds())
    } finally {
      this.inFlight--
    }
  }

  /** The HTTP/2 session to an h2c or gRPC instance on this host (its own, registered; or a same-host allocator's). */
  private async localSession(local: Direct): Promise<ClientHttp2Session> {
    const key = hostPort(local.host, local.port)
    return await this.localH2.get(key, key, async () => await connected(local.host, local.port))
  }

  /** Closes the HTTP/2 sessions to instances on this host. */
  stop(): void {
    this.localH2.stop()
  }

  /** On shutdown, after the drain: WebSockets still open are told so (1001, going away), others closed. */
  closeUpgraded(): void {
    for (const [socket, ws] of this.upgraded) {
      if (ws && socket.writable) socket.write(WS_GOING_AWAY)
      socket.end()
    }
  }

  /** Tries instances until one serves the request or there is nothing left to try. */
  private async attempts(x: Exchange): Promise<Outcome> {
    const { placement, stats } = this.components
    const policy = this.components.traffic(x.app)
    const deadline = Date.now() + policy.requestTimeoutMs
    const exclude = new Set<string>()
    const idempotent = IDEMPOTENT.has(x.method) && !x.withBody
    let budget: RetryBudget | undefined
    let retries = 0
    // Refusals and unreachable hosts take a pick each (MAX_ATTEMPTS of them); retries after a
    // failure are the policy's.
    for (let n = 0; n < MAX_ATTEMPTS + policy.attempts - 1; n++) {
      let ep: Endpoint
      try {
        // At once when it can be (no promise to wait for), else after a measurement or a cold start.
        const choice =
          placement.chooseNow(x.app, { exclude }) ?? (await placement.choose(x.app, { exclude, signal: x.clientGone }))
        ep = choice.endpoint
        x.coldMs += choice.coldMs
      } catch (err) {
        if (x.clientGone.aborted) return { kind: 'client-gone' }
        if (err instanceof PlacementError)
          return { kind: 'error', code: err.code, message: err.message, status: err.status }
        throw err
      }
      if (budget === undefined) {
        budget = this.budget(x.app, policy.budgetRatio)
        budget.deposit()
      }
      const left = deadline - Date.now()
      if (left <= 0) {
        const message = `no answer from an instance of ${x.app} within ${policy.requestTimeoutMs / 1000} s`
        return { kind: 'error', code: 'UPSTREAM_TIMEOUT', message, status: HTTP_STATUS.UPSTREAM_TIMEOUT }
      }
      const mayRetry = idempotent && retries < policy.attempts - 1
      const a = await this.attempt(x, ep, {
        headersTimeoutMs: Math.min(policy.tryTimeoutMs, left),
        bodyTimeoutMs: policy.tryTimeoutMs,
        // Only a look at the budget: a token is taken when a 5xx is really retried.
        retry5xx: mayRetry && policy.retryOn.includes('5xx') && budget.available()
      })
      switch (a.kind) {
        case 'served':
          return a
        case 'client-gone':
          return a
        case 'broken':
          return { kind: 'cut', error: a.error }
        case 'app-5xx':
          budget.withdraw()
          exclude.add(ep.key)
          retries++
          stats?.onRetry?.(x.app)
          continue
        case 'refused':
          exclude.add(ep.key)
          placement.forgetRecent(ep.key)
          continue
        case 'unreachable':
          exclude.add(ep.key)
          placement.forgetRecent(ep.key)
          this.forget(x.app, ep)
          continue
        case 'failed': {
          exclude.add(ep.key)
          // A connection to the host that broke (it died) says nothing of the app: retrying
          // elsewhere only moves load the host no longer carries, so it is not charged to the
          // retry budget (which guards a struggling app against retry storms), and that host's
          // other instances sit out the retry.
          if (a.hostLost && a.direct !== true)
            for (const e of placement.endpoints(x.app)) if (e.peer === ep.peer) exclude.add(e.key)
          if (
            mayRetry &&
            Date.now() < deadline &&
            policy.retryOn.includes('error') &&
            (a.hostLost || budget.withdraw())
          ) {
            retries++
            stats?.onRetry?.(x.app)
            continue
          }
          const timedOut = (a.error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT'
          const code = timedOut ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_FAILED'
          return {
            kind: 'error',
            code,
            message: `instance ${ep.instance} of ${x.app} on ${ep.peer}: ${a.error.message}`,
            status: HTTP_STATUS[code]
          }
        }
      }
    }
    return {
      kind: 'error',
      code: 'NO_REACHABLE_INSTANCE',
      message: `no instance of ${x.app} could be reached`,
      status: HTTP_STATUS.NO_REACHABLE_INSTANCE
    }
  }

  /** Sends the request to one instance and relays its answer; never throws. */
  private async attempt(
    x: Exchange,
    ep: Endpoint,
    opts: { headersTimeoutMs: number; bodyTimeoutMs: number; retry5xx: boolean }
  ): Promise<Attempt> {
    const { balancer, forward, stats } = this.components
    if (x.exact) return await this.attemptExact(x, ep)
    const direct = this.direct(x.app, ep, false)
    const pool =
      direct?.pool ?? (ep.local ? undefined : forward.pool(ep.peer, { v: 1, app: x.app, instance: ep.instance }))
    if (pool === undefined) return { kind: 'refused', code: 'NO_INSTANCE' }
    stats?.onForward?.(x.app, direct !== undefined ? 'loopback' : 'libp2p')
    const end = this.begin(ep, direct)
    const tPlaced = performance.now()
    const headers = forwardedHeaders(x)
    balancer.start(ep.key)
    let relayed = false
    let refusal: string | undefined
    let app5xx: number | undefined
    const discard = (): Writable =>
      new Writable({
        write(_c, _e, cb) {
          cb()
        }
      })
    const eject = (took: number, ok: boolean): void => {
      if (balancer.finish(ep.key, took, ok)) stats?.onEjection?.(x.app)
    }
    try {
      const { trailers } = await pool.stream(
        {
          path: x.path,
          method: x.method as 'GET',
          headers,
          body: x.withBody ? x.req : null,
          signal: x.clientGone,
          headersTimeout: opts.headersTimeoutMs,
          bodyTimeout: opts.bodyTimeoutMs,
          opaque: x.res
        },
        ({ statusCode, headers: upstream }) => {
          // A host too busy to answer probes in time, but serving, is not taken for failed while it serves (over
          // loopback the instance answered, not its host).
          if (direct === undefined) this.components.heard?.(ep.peer)
          const hostError = upstream[ERROR_HEADER]
          if (typeof hostError === 'string' && !x.withBody) {
            // The host no longer has that instance (or app): the app never saw this request.
            refusal = hostError
            return discard()
          }
          if (statusCode >= 500 && opts.retry5xx) {
            // Retried elsewhere: this answer is read and dropped, never relayed.
            app5xx = statusCode
            return discard()
          }
          relayed = true
          const tHead = performance.now()
          const cold = x.coldMs === 0 ? '0.00' : x.coldMs.toFixed(2)
          const extra: Record<string, string> = {
            'x-physarum-instance': `${ep.instance}@${ep.peer}`,
            'server-timing': `placement;dur=${(tPlaced - x.t0 - x.coldMs).toFixed(2)}, cold;dur=${cold}, upstream;dur=${(tHead - tPlaced).toFixed(2)}`
          }
          if (!declaresTrailers(upstream)) {
            relayHead(x.res, statusCode, upstream, extra)
            return x.res
          }
          // Its trailers come with undici's promise, after the body: the response is ended then.
          extra.trailer = listValue(upstream.trailer)
          relayHead(x.res, statusCode, upstream, extra)
          return trailerSink(x.res)
        }
      )
      if (relayed && !x.res.writableEnded) endWithTrailers(x.res, trailers ?? {})
      if (refusal !== undefined) {
        balancer.cancel(ep.key)
        return { kind: 'refused', code: refusal }
      }
      if (app5xx !== undefined) {
        eject(performance.now() - tPlaced, false)
        return { kind: 'app-5xx', status: app5xx }
      }
      eject(performance.now() - tPlaced, x.res.statusCode < 500)
      return { kind: 'served', status: x.res.statusCode }
    } catch (err) {
      const error = err as Error
      if (x.clientGone.aborted) {
        balancer.cancel(ep.key)
        return { kind: 'client-gone' }
      }
      eject(0, false)
      if (x.res.headersSent || relayed) return { kind: 'broken', error }
      // A loopback instance that refuses the connection (it died) never saw the request.
      if (err instanceof ConnectError || (direct !== undefined && refusedConnect(err)))
        return { kind: 'unreachable', error }
      return { kind: 'failed', error, hostLost: connectionLost(err), direct: direct !== undefined }
    } finally {
      end?.()
    }
  }

  /**
   * A request the pool cannot carry (declared trailers, Expect: 100-continue) on a stream of
   * its own. Tried elsewhere only when its stream could not be opened: the body may be on its way.
   */
  private async attemptExact(x: Exchange, ep: Endpoint): Promise<Attempt> {
    const { balancer, forward } = this.components
    let socket: Duplex | undefined
    let host = '127.0.0.1'
    let port = 0
    const local = this.direct(x.app, ep, false)
    try {
      if (local !== undefined) {
        host = local.host
        port = local.port
      } else if (ep.local) return { kind: 'refused', code: 'NO_INSTANCE' }
      else socket = await forward.open(peerIdFromString(ep.peer), { v: 1, app: x.app, instance: ep.instance })
    } catch (err) {
      return { kind: 'unreachable', error: err as Error }
    }
    this.components.stats?.onForward?.(x.app, local !== undefined ? 'loopback' : 'libp2p')
    const end = this.begin(ep, local)
    const tPlaced = performance.now()
    const headers = forwardedHeaders(x)
    balancer.start(ep.key)
    try {
      const status = await relayExact(
        x.req,
        x.res,
        { socket, host, port },
        {
          path: x.path,
          headers,
          extra: () => ({ 'x-physarum-instance': `${ep.instance}@${ep.peer}` }),
          signal: x.clientGone
        }
      )
      balancer.finish(ep.key, performance.now() - tPlaced, status < 500)
      return { kind: 'served', status }
    } catch (err) {
      if (x.clientGone.aborted) {
        balancer.cancel(ep.key)
        return { kind: 'client-gone' }
      }
      balancer.finish(ep.key, 0, false)
      return { kind: 'failed', error: err as Error, hostLost: connectionLost(err), direct: local !== undefined }
    } finally {
      end?.()
    }
  }

  /** The client's answer and the metrics, once per request. */
  private settle(x: Exchange, o: Outcome): void {
    const seconds = (performance.now() - x.t0) / 1000
    const { stats, placement } = this.components
    switch (o.kind) {
      case 'client-gone':
        return
      case 'served':
        stats?.onResponse?.(x.app, o.status, seconds)
        return
      case 'cut':
        x.res.destroy(o.error)
        stats?.onResponse?.(x.app, 502, seconds)
        return
      case 'error':
        sendError(x.res, this.components.recentErrors, x.app, o.code, o.message, o.status)
        // An app nobody knows is counted as '?': made-up names must not each add a metric series.
        stats?.onResponse?.(placement.known(x.app) ? x.app : '?', o.status, seconds)
    }
  }
}
