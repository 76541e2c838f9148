// Placement, the proxy's latency-aware manager: which instance serves a request, and
// when to ask an allocator for a new one. Candidates come from the member table (plus a
// local server-mode instance); RTTs from the rtt module. Beyond HardReq: never used.
// Within SoftReq: balanced (p2c over peak-EWMA). Only within HardReq: used now while a
// nearer instance is allocated in the background. None: a cold start, nearest
// allocator first, shared by every request that waits for it. It sees the cluster only
// through PlacementComponents, so that it is tested alone with fakes (test/unit/placement).
import type { Logger } from '../util/log.js'
import { AllocationError, type InstanceInfo } from '../allocation/protocol.js'
import type { Balancer } from './balancer.js'
import type { RequestAbort } from '../util/http.js'
import { instanceKey } from '../forward/protocol.js'
import type { AppInstances } from '../cluster/membership/announcement.js'
import type { Member } from '../cluster/membership/table.js'
import { PlacementError } from './errors.js'
import {
  JOIN_SETTLE_MS,
  JOIN_SETTLE_POLL_MS,
  MEASURE_CANDIDATES,
  MEASURE_MAX_MS,
  MEASURE_MIN_MS,
  RECENT_ALLOCATION_MS
} from './constants.js'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Endpoint {
  key: string
  /** Peer hosting the instance; the proxy's own peer for a local server-mode instance. */
  peer: string
  app: string
  instance: string
  rttMs: number
  local: boolean
  /** Requests in flight per instance on that host, as announced. */
  announcedLoad: number
}

/** The instance IDs an announcement lists for one app (the schema has checked them). */
function announcedIds(inst: AppInstances | undefined): string[] {
  return inst?.ids ?? []
}

/** What placement needs of the cluster (in a daemon: the agent's; in a test: fakes). */
export interface PlacementComponents {
  /** This proxy's peer ID (its own server-mode instance is at RTT 0). */
  self: string
  /** When this proxy started (epoch ms): a cold start soon after waits for the view to fill. */
  startedAt: number
  /** Every member of the table, of any status. */
  members: () => Member[]
  member: (peer: string) => Member | undefined
  rtt: {
    /** The current RTT estimate to a peer (ms), if measured. */
    get: (peer: string) => number | undefined
    /** Measures the peers, in parallel, within `timeoutMs`; failures leave them unmeasured. */
    measureMany: (peers: string[], opts: { timeoutMs: number }) => Promise<void>
    /**
     * An RTT estimate (ms) from network coordinates, without a probe: which few unmeasured peers are worth measuring,
     * and the distance of those not measured.
     */
    estimate?: (peer: string) => number | undefined
  }
  /** Asks one allocator for a ready instance; throws an AllocationError when it gives none. */
  allocate: (allocator: string, app: string, opts: { fresh: boolean; timeoutMs: number }) => Promise<InstanceInfo>
  balancer: Balancer
  log: Logger
  stats?: PlacementStats
}

export interface AppPolicy {
  softMs: number
  hardMs: number
  targetConcurrency: number
  maxInstances: number
}

export interface PlacementInit {
  policy: (app: string) => AppPolicy
  /** Whether this proxy's own config lists the app. */
  inLocalCatalog: (app: string) => boolean
  coldStartTimeoutMs: number
  local?: (app: string) => Endpoint | undefined
}

export interface PlacementStats {
  onAllocation?: (app: string, result: string) => void
  onColdStart?: (app: string) => void
}

export interface Choice {
  endpoint: Endpoint
  coldMs: number
}

export class Placement {
  private readonly cold = new Map<string, Promise<Endpoint>>()
  private readonly background = new Map<string, Promise<void>>()
  /** Instances we just allocated, usable before their announcement arrives. */
  private readonly recent = new Map<string, { ep: Omit<Endpoint, 'rttMs'>; at: number }>()
  readonly inFlightAllocations = new Set<string>()

  constructor(
    private readonly components: PlacementComponents,
    private readonly init: PlacementInit
  ) {}

  private rttOf(peer: string): number | undefined {
    if (peer === this.components.self) return 0
    return this.components.rtt.get(peer)
  }

  /** The measured RTT, else the coordinates' estimate (ms). */
  private distanceOf(peer: string): number | undefined {
    return this.rttOf(peer) ?? this.components.rtt.estimate?.(peer)
  }

  /**
   * Measures the peers whose RTT is unknown, in parallel, bounded by `timeoutMs`: with coordinates, only the
   * MEASURE_CANDIDATES nearest by estimate (the rest keep their estimate), not every one of them.
   */
  private async measureUnknown(peers: string[], timeoutMs: number): Promise<void> {
    let unknown = [...new Set(peers)].filter(p => this.rttOf(p) === undefined)
    if (unknown.length === 0) return
    const estimate = this.components.rtt.estimate
    if (estimate !== undefined && unknown.length > MEASURE_CANDIDATES)
      unknown = unknown
        .map((p, i) => ({ p, e: estimate(p) ?? Infinity, i }))
        .sort((a, b) => a.e - b.e || a.i - b.i)
        .slice(0, MEASURE_CANDIDATES)
        .map(x => x.p)
    await this.components.rtt.measureMany(unknown, {
      timeoutMs: Math.max(MEASURE_MIN_MS, Math.min(timeoutMs, MEASURE_MAX_MS))
    })
  }

  /** The keys of every instance any member still announces (of any app), and of recent allocations. */
  liveKeys(): Set<string> {
    const out = new Set<string>()
    for (const m of this.components.members()) {
      for (const [app, inst] of Object.entries(m.announcement.instances)) {
        for (const id of announcedIds(inst)) out.add(instanceKey(m.announcement.peer, app, id))
      }
    }
    for (const key of this.recent.keys()) out.add(key)
    return out
  }

  /** Every known ready instance of `app` with its host's RTT (unknown RTT: Infinity). */
  endpoints(app: string): Endpoint[] {
    const out = new Map<string, Endpoint>()
    const local = this.init.local?.(app)
    if (local !== undefined) out.set(local.key, local)
    for (const m of this.components.members()) {
      if (m.status !== 'alive') continue
      const a = m.announcement
      const inst = a.instances[app]
      for (const id of announcedIds(inst)) {
        const key = instanceKey(a.peer, app, id)
        out.set(key, {
          key,
          peer: a.peer,
          app,
          instance: id,
          rttMs: this.rttOf(a.peer) ?? Infinity,
          local: false,
          announcedLoad: (inst?.inFlight ?? 0) / Math.max(1, inst?.ready ?? 1)
        })
      }
    }
    const now = Date.now()
    for (const [key, r] of this.recent) {
      if (now - r.at > RECENT_ALLOCATION_MS) {
        this.recent.delete(key)
        continue
      }
      if (r.ep.app !== app || out.has(key)) continue
      const host = this.components.member(r.ep.peer)
      if (host !== undefined && host.status !== 'alive') continue
      // An announcement newer than the allocation that does not list the instance: it is gone.
      if (host !== undefined && host.announcement.ts > r.at) {
        this.recent.delete(key)
        continue
      }
      out.set(key, { ...r.ep, rttMs: this.rttOf(r.ep.peer) ?? Infinity })
    }
    return [...out.values()]
  }

  /** Whether any member or our own config knows the app. */
  known(app: string): boolean {
    if (this.init.inLocalCatalog(app)) return true
    return this.components
      .members()
      .some(
        m =>
          m.status === 'alive' && (m.announcement.catalog.includes(app) || m.announcement.instances[app] !== undefined)
      )
  }

  forgetRecent(key: string): void {
    this.recent.delete(key)
  }

  /** The candidates for a request: ready instances not excluded, the ejected ones only when nothing else is left. */
  private candidates(app: string, exclude: Set<string> | undefined): Endpoint[] {
    const { balancer } = this.components
    const all = this.endpoints(app).filter(e => exclude?.has(e.key) !== true)
    // Ejected instances sit out, unless that leaves none: then a suspect instance beats a cold start.
    const healthy = all.filter(e => !balancer.ejected(e.key))
    return healthy.length > 0 ? healthy : all
  }

  /**
   * The choice when it needs no wait (every candidate's RTT known, one within HardReq: the usual case), without a
   * promise; undefined: choose() waits for a measurement or a cold start.
   */
  chooseNow(app: string, opts: { exclude?: Set<string> } = {}): Choice | undefined {
    const eps = this.candidates(app, opts.exclude)
    if (eps.some(e => e.rttMs === Infinity)) return undefined
    return this.among(app, this.init.policy(app), eps)
  }

  async choose(app: string, opts: { exclude?: Set<string>; signal?: RequestAbort } = {}): Promise<Choice> {
    const policy = this.init.policy(app)
    let eps = this.candidates(app, opts.exclude)
    if (eps.some(e => e.rttMs === Infinity)) {
      await this.measureUnknown(
        eps.filter(e => e.rttMs === Infinity).map(e => e.peer),
        policy.hardMs
      )
      eps = eps.map(e => ({ ...e, rttMs: this.distanceOf(e.peer) ?? Infinity }))
    }
    const now = this.among(app, policy, eps)
    if (now !== undefined) return now
    const t = Date.now()
    const endpoint = await this.coldStart(app, policy, opts.signal)
    return { endpoint, coldMs: Date.now() - t }
  }

  /** The choice among candidates whose distances are known; undefined: none within HardReq (a cold start). */
  private among(app: string, policy: AppPolicy, eps: Endpoint[]): Choice | undefined {
    const { balancer } = this.components
    const withinHard = eps.filter(e => e.rttMs <= policy.hardMs)
    if (withinHard.length === 0) return undefined
    const withinSoft = withinHard.filter(e => e.rttMs <= policy.softMs)
    if (withinSoft.length === 0) {
      const best = withinHard.reduce((a, b) => (a.rttMs <= b.rttMs ? a : b))
      this.inBackground(`near:${app}`, async () => {
        await this.allocateNear(app, policy, best.rttMs)
      })
      return { endpoint: best, coldMs: 0 }
    }
    const endpoint = balancer.pick(
      withinSoft,
      e => e.key,
      e => Math.max(0.05, e.rttMs)
    ) as Endpoint
    // Scale out when every instance within SoftReq carries its target concurrency.
    const saturated = withinSoft.every(e => e.announcedLoad + balancer.inFlight(e.key) >= policy.targetConcurrency)
    if (saturated && eps.length < policy.maxInstances)
      this.inBackground(`scale:${app}`, async () => {
        await this.allocate(app, policy, { fresh: true, maxRttMs: policy.softMs })
      })
    return { endpoint, coldMs: 0 }
  }

  private inBackground(key: string, fn: () => Promise<void>): void {
    if (this.background.has(key)) return
    const p = fn()
      .catch(err => {
        this.components.log.debug(`background allocation ${key} failed: ${(err as Error).message}`)
      })
      .finally(() => {
        this.background.delete(key)
      })
    this.background.set(key, p)
  }

  private async allocateNear(app: string, policy: AppPolicy, bestRtt: number): Promise<void> {
    await this.allocate(app, policy, { fresh: true, maxRttMs: Math.min(policy.softMs, bestRtt), strictlyNearer: true })
  }

  /** No instance within HardReq: allocate now; concurrent requests share one allocation. */
  private async coldStart(app: string, policy: AppPolicy, signal?: RequestAbort): Promise<Endpoint> {
    let p = this.cold.get(app)
    if (p === undefined) {
      this.components.stats?.onColdStart?.(app)
      p = this.allocate(app, policy, { fresh: false, maxRttMs: policy.hardMs }).finally(() => {
        this.cold.delete(app)
      })
      this.cold.set(app, p)
    }
    // Each waiting request has its own bound; the shared allocation goes on for the others.
    let timer: NodeJS.Timeout | undefined
    let gone: (() => void) | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(
          new PlacementError(
            'COLD_START_TIMEOUT',
            `no instance of ${app} became ready within ${this.init.coldStartTimeoutMs / 1000} s`
          )
        )
      }, this.init.coldStartTimeoutMs)
      gone = () => {
        reject(new PlacementError('CLIENT_GONE', 'client went away'))
      }
      // A client that left before this point (while RTTs were measured) gets no 'abort' event any more.
      if (signal?.aborted === true) gone()
      else signal?.once('abort', gone)
    })
    try {
      return await Promise.race([p, timeout])
    } finally {
      clearTimeout(timer)
      // The request goes on (forwarding, a retry's next wait): its signal must not collect listeners.
      if (gone !== undefined) signal?.off('abort', gone)
    }
  }

  /** Asks allocators, nearest first, that list the app and announce capacity. */
  private async allocate(
    app: string,
    policy: AppPolicy,
    opts: { fresh: boolean; maxRttMs: number; strictlyNearer?: boolean }
  ): Promise<Endpoint> {
    const { members } = this.components
    const candidates = (): Member[] =>
      members().filter(
        m =>
          m.status === 'alive' &&
          m.announcement.roles.includes('allocator') &&
          m.announcement.catalog.includes(app) &&
          (m.announcement.capacity.slotsFree ?? 1) > 0
      )
    let hosts = candidates()
    // A proxy that has just started may not know the cluster yet: give the view a moment.
    const settle = this.components.startedAt + JOIN_SETTLE_MS
    while (hosts.length === 0 && Date.now() < settle) {
      await sleep(JOIN_SETTLE_POLL_MS)
      hosts = candidates()
    }
    if (hosts.length === 0) {
      if (!this.known(app))
        throw new PlacementError('UNKNOWN_APP', `unknown app ${app}: no instance and no allocator's catalog lists it`)
      throw new PlacementError(
        'NO_ALLOCATOR',
        `no allocator can host ${app}: none that lists it is alive with free capacity`
      )
    }
    await this.measureUnknown(
      hosts.map(h => h.announcement.peer),
      policy.hardMs
    )
    const ranked = hosts
      .map(h => ({ peer: h.announcement.peer, rtt: this.distanceOf(h.announcement.peer) ?? Infinity }))
      .filter(h => (opts.strictlyNearer === true ? h.rtt < opts.maxRttMs : h.rtt <= opts.maxRttMs))
      .sort((a, b) => a.rtt - b.rtt)
    if (ranked.length === 0)
      throw new PlacementError('OUT_OF_REACH', `no allocator that lists ${app} is within ${opts.maxRttMs} ms`)
    const reasons: string[] = []
    const deadline = Date.now() + this.init.coldStartTimeoutMs
    for (const h of ranked) {
      const left = deadline - Date.now()
      if (left <= 0) break
      this.inFlightAllocations.add(`${app}@${h.peer}`)
      try {
        const inst = await this.components.allocate(h.peer, app, { fresh: opts.fresh, timeoutMs: left })
        this.components.stats?.onAllocation?.(app, 'ok')
        const key = instanceKey(inst.peer, app, inst.id)
        const ep = { key, peer: inst.peer, app, instance: inst.id, local: false, announcedLoad: 0 }
        this.recent.set(key, { ep, at: Date.now() })
        return { ...ep, rttMs: h.rtt }
      } catch (err) {
        const code = err instanceof AllocationError ? err.code : 'ERROR'
        this.components.stats?.onAllocation?.(app, code)
        reasons.push(`${h.peer.slice(-6)}: ${code} ${(err as Error).message}`)
      } finally {
        this.inFlightAllocations.delete(`${app}@${h.peer}`)
      }
    }
    throw new PlacementError('ALL_REFUSED', `no allocator could start ${app}: ${reasons.join('; ')}`)
  }
}
