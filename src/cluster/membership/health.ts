// Local health (Lifeguard, Dadgar et al., DSN 2018): a node that is itself slow — its
// event loop late because its CPU is starved or busy, its own suspicion raised by others —
// cannot tell a slow peer from a dead one. Rather than declare healthy members failed, it
// gives its failure detector more time: probe, silence and suspicion timeouts are
// multiplied by 1 + score, the score rising with its own measured lag and each time it
// had to refute a suspicion of itself, and falling back as it recovers.
import { HEALTH_LAG_HALF_LIFE_MS, HEALTH_MAX_SCORE, HEALTH_REFUTE_DECAY_MS } from '../constants.js'

export interface LocalHealthInit {
  /** Event-loop lag worth one point of score (ms); lag below it costs nothing. */
  lagUnitMs: number
  /** Highest score; Lifeguard's default is 8 (timeouts at most 9× their base). */
  maxScore?: number
  /** The remembered lag halves in this long, so that one bad second counts for a few (ms). */
  lagHalfLifeMs?: number
  /** One refutation point is forgiven after this long (ms). */
  refuteDecayMs?: number
}

export class LocalHealth {
  private readonly maxScore: number
  private readonly halfLifeMs: number
  private readonly refuteDecayMs: number
  private lagMs = 0
  private refutes = 0
  private lastSample?: number
  private lastRefuteDecay = 0

  constructor(private readonly init: LocalHealthInit) {
    this.maxScore = init.maxScore ?? HEALTH_MAX_SCORE
    this.halfLifeMs = init.lagHalfLifeMs ?? HEALTH_LAG_HALF_LIFE_MS
    this.refuteDecayMs = init.refuteDecayMs ?? HEALTH_REFUTE_DECAY_MS
  }

  /**
   * Takes a lag sample: how late (ms) a steady timer of the caller fired (the probe loop's,
   * every 100 ms). No timer of its own: a finer event-loop monitor would wake an idle
   * daemon dozens of times a second, and a late tick is the lag that matters here.
   */
  sample(now: number, lag: number): void {
    const since = this.lastSample === undefined ? 0 : now - this.lastSample
    this.lastSample = now
    this.lagMs = Math.max(lag, this.lagMs * Math.pow(0.5, since / this.halfLifeMs))
    if (this.refutes > 0 && now - this.lastRefuteDecay >= this.refuteDecayMs) {
      this.refutes--
      this.lastRefuteDecay = now
    }
  }

  /** Others suspected this node: it was too slow to answer them in time. */
  refuted(now: number): void {
    // Every member that suspected it says so: one point per burst of notices, not per notice.
    if (this.refutes > 0 && now - this.lastRefuteDecay < 500) return
    this.refutes = Math.min(this.maxScore, this.refutes + 1)
    this.lastRefuteDecay = now
  }

  /** 0 (healthy) … maxScore. */
  get score(): number {
    return Math.min(this.maxScore, Math.floor(this.lagMs / this.init.lagUnitMs) + this.refutes)
  }

  /** What this node's failure-detector timeouts are multiplied by. */
  get multiplier(): number {
    return 1 + this.score
  }

  /** The remembered worst lag (ms), for logs and metrics. */
  get lag(): number {
    return this.lagMs
  }
}
