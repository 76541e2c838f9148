// Load balancing among instances within the soft latency requirement: power of two
// choices over a peak-EWMA of observed latency, weighted by requests in flight (the
// balancer Linkerd uses). An endpoint that fails repeatedly is ejected for a while.
import { DECAY_MS, EJECT_AFTER, EJECT_BASE_MS, EJECT_MAX_MS } from './constants.js'

export interface EndpointStats {
  /** Peak-EWMA of response latency (ms); peaks are taken at once, decays are smoothed. */
  ewmaMs: number
  lastAt: number
  inFlight: number
  consecutiveFailures: number
  ejectedUntil: number
  ejections: number
}

export class Balancer {
  private readonly stats = new Map<string, EndpointStats>()

  get(key: string, seedMs = 1): EndpointStats {
    let s = this.stats.get(key)
    if (s === undefined) {
      s = { ewmaMs: seedMs, lastAt: Date.now(), inFlight: 0, consecutiveFailures: 0, ejectedUntil: 0, ejections: 0 }
      this.stats.set(key, s)
    }
    return s
  }

  /** The cost of sending one more request there: latency × (in flight + 1). */
  cost(key: string, seedMs = 1, now = Date.now()): number {
    const s = this.get(key, seedMs)
    const w = Math.exp(-(now - s.lastAt) / DECAY_MS)
    const decayed = s.ewmaMs * w + seedMs * (1 - w)
    return Math.max(decayed, 0.001) * (s.inFlight + 1)
  }

  /** Power of two choices: two at random, the cheaper wins. */
  pick<T>(
    items: T[],
    keyOf: (t: T) => string,
    seedOf: (t: T) => number = () => 1,
    random = Math.random
  ): T | undefined {
    if (items.length <= 1) return items[0]
    const i = Math.floor(random() * items.length)
    let j = Math.floor(random() * (items.length - 1))
    if (j >= i) j++
    const a = items[i]
    const b = items[j]
    return this.cost(keyOf(a), seedOf(a)) <= this.cost(keyOf(b), seedOf(b)) ? a : b
  }

  start(key: string): void {
    this.get(key).inFlight++
  }

  /** A request that ended without a verdict on the endpoint (the client left, the host no longer has it). */
  cancel(key: string): void {
    const s = this.get(key)
    s.inFlight = Math.max(0, s.inFlight - 1)
  }

  /** Records a finished request; returns true when this failure ejected the endpoint. */
  finish(key: string, latencyMs: number, ok: boolean, now = Date.now()): boolean {
    const s = this.get(key)
    s.inFlight = Math.max(0, s.inFlight - 1)
    if (ok) {
      const w = Math.exp(-(now - s.lastAt) / DECAY_MS)
      s.ewmaMs = latencyMs > s.ewmaMs ? latencyMs : s.ewmaMs * w + latencyMs * (1 - w)
      s.lastAt = now
      s.consecutiveFailures = 0
      return false
    }
    s.consecutiveFailures++
    if (s.consecutiveFailures >= EJECT_AFTER) {
      s.ejections++
      s.ejectedUntil = now + Math.min(EJECT_MAX_MS, EJECT_BASE_MS * 2 ** (s.ejections - 1))
      s.consecutiveFailures = 0
      return true
    }
    return false
  }

  ejected(key: string, now = Date.now()): boolean {
    return (this.stats.get(key)?.ejectedUntil ?? 0) > now
  }

  inFlight(key: string): number {
    return this.stats.get(key)?.inFlight ?? 0
  }

  /** Drops what it knows of instances that are gone (`keep` says no) and carry no request. */
  sweep(keep: (key: string) => boolean): void {
    for (const [key, s] of this.stats) if (s.inFlight === 0 && !keep(key)) this.stats.delete(key)
  }
}

/** Retries may add at most `ratio` extra load: every request earns `ratio` of a token. */
export class RetryBudget {
  private tokens: number
  constructor(
    private readonly ratio = 0.2,
    private readonly cap = 10
  ) {
    this.tokens = cap / 2
  }
  deposit(): void {
    this.tokens = Math.min(this.cap, this.tokens + this.ratio)
  }
  /** Whether a retry could be taken now (withdraw takes it). */
  available(): boolean {
    return this.tokens >= 1
  }
  withdraw(): boolean {
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
