// Server side of /physarum/alloc/1.0.0: validates each request, rate-limits each
// requesting peer (token bucket), asks the instance manager, and answers only when the
// instance is ready. Malformed input gets BAD_REQUEST; the allocator keeps serving.
import { lpStream, InvalidDataLengthError, InvalidDataLengthLengthError } from '@libp2p/utils'
import type { Stream, Connection, Startable } from '@libp2p/interface'
import type { PhysarumNode } from '../cluster/node.js'
import { debugOn, type Logger } from '../util/log.js'
import { ANSWER_TIMEOUT_MS, MAX_INBOUND_ALLOCATIONS, RATE_LIMIT_PEERS, REQUEST_READ_TIMEOUT_MS } from './constants.js'
import {
  ALLOC_PROTOCOL,
  MAX_ALLOC_MESSAGE,
  AllocationError,
  encode,
  validateRequest,
  type AllocErrorCode,
  type AllocResponse
} from './protocol.js'

export interface AllocationStats {
  onResult?: (app: string, result: string, seconds: number) => void
}

/**
 * What the server asks for a ready instance (the allocator's instance manager): resolves once
 * the instance is ready, or throws an AllocationError whose code and message go to the peer.
 */
export type Allocate = (
  app: string,
  opts: { fresh?: boolean }
) => Promise<{ instance: { id: string; app: string }; started: boolean }>

/** A token bucket per peer: `burst` requests at once, refilled at `perSecond`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  constructor(
    private perSecond: number,
    private burst: number
  ) {}

  /** New limits (a config reload); buckets keep what they hold, capped at the new burst. */
  setLimits(perSecond: number, burst: number): void {
    this.perSecond = perSecond
    this.burst = burst
  }

  take(key: string, now = Date.now()): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond)
    b.at = now
    // Bounded (RATE_LIMIT_PEERS): the least recently seen goes first (Map order is insertion
    // order, so a seen bucket is moved to the end).
    this.buckets.delete(key)
    this.buckets.set(key, b)
    if (this.buckets.size > RATE_LIMIT_PEERS) this.buckets.delete(this.buckets.keys().next().value as string)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }
}

export class AllocationServer implements Startable {
  private readonly limiter: RateLimiter

  constructor(
    private readonly components: { node: PhysarumNode; allocate: Allocate; log: Logger; stats?: AllocationStats },
    init: { ratePerSecond: number; burst: number }
  ) {
    this.limiter = new RateLimiter(init.ratePerSecond, init.burst)
  }

  async start(): Promise<void> {
    await this.components.node.handle(
      ALLOC_PROTOCOL,
      async (stream: Stream, connection: Connection) => {
        await this.onStream(stream, connection)
      },
      { maxInboundStreams: MAX_INBOUND_ALLOCATIONS }
    )
  }

  /** New rate limits (a config reload). */
  setRateLimit(perSecond: number, burst: number): void {
    this.limiter.setLimits(perSecond, burst)
  }

  /** Takes no new allocation requests; those being answered finish. */
  async beforeStop(): Promise<void> {
    await this.components.node
      .unhandle(ALLOC_PROTOCOL)
      .catch(debugOn(this.components.log, 'unhandle of the allocation protocol'))
  }

  async stop(): Promise<void> {
    await this.beforeStop()
  }

  private async onStream(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_ALLOC_MESSAGE })
    const t0 = process.hrtime.bigint()
    let id = ''
    let app = '?'
    const answer = async (res: AllocResponse): Promise<void> => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      this.components.stats?.onResult?.(app, res.ok ? 'ok' : res.error.code, seconds)
      try {
        await lp.write(encode(res), { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })
        await stream.close({ signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })
      } catch (err) {
        stream.abort(err as Error)
      }
    }
    const refuse = async (code: AllocErrorCode, message: string): Promise<void> => {
      await answer({ v: 1, id, ok: false, error: { code, message } })
    }
    let raw
    try {
      raw = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
    } catch (err) {
      // Too long: say so while the stream still takes an answer; cut short or garbage: reset.
      if (err instanceof InvalidDataLengthError || err instanceof InvalidDataLengthLengthError) {
        await refuse('BAD_REQUEST', `request larger than ${MAX_ALLOC_MESSAGE} bytes`)
        return
      }
      stream.abort(err as Error)
      return
    }
    let req: unknown
    try {
      req = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray()))
    } catch {
      await refuse('BAD_REQUEST', 'request is not UTF-8 JSON')
      return
    }
    if (typeof req === 'object' && req !== null && typeof (req as { id?: unknown }).id === 'string')
      id = String((req as { id: string }).id).slice(0, 128)
    if (!validateRequest(req)) {
      const e = validateRequest.errors?.[0]
      await refuse('BAD_REQUEST', `invalid request: ${e?.instancePath ?? ''} ${e?.message ?? ''}`.trim())
      return
    }
    app = req.app
    if (!this.limiter.take(peer)) {
      await refuse('RATE_LIMITED', `too many allocation requests from ${peer}; retry later`)
      return
    }
    try {
      const t = Date.now()
      const { instance, started } = await this.components.allocate(req.app, { fresh: req.requirements?.fresh })
      await answer({
        v: 1,
        id,
        ok: true,
        instance: {
          id: instance.id,
          app: instance.app,
          peer: this.components.node.peerId.toString(),
          state: 'ready',
          started,
          readyMs: Date.now() - t
        }
      })
    } catch (err) {
      // A refusal the manager made (never one of the client-side codes, which it cannot throw).
      if (err instanceof AllocationError) {
        await refuse(err.code as AllocErrorCode, err.message)
        return
      }
      // The details (paths, engine messages) go to this host's log, not to the peer.
      this.components.log.error(`allocation of ${req.app} failed: ${(err as Error).message}`)
      await refuse('INTERNAL', `internal error on the allocator while starting ${req.app}; its log has the details`)
    }
  }
}
