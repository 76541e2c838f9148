// Delta announcements, the pure part: what changed in this node's state since the version
// its peers hold (DeltaSender, with per-field rate limits for fast-moving load figures),
// and a peer's delta applied to the version this node holds of it (applyDelta). The wire
// format is announcement.ts's; membership.ts publishes and receives.
import type { Announcement, Delta } from './announcement.js'
import { CPU_LOAD_DELTA_MS, CPU_LOAD_STEP, IN_FLIGHT_DELTA_MS } from './constants.js'

/** The part of an announcement that deltas carry (seq and ts are the version's; leaving goes as a full one). */
export type State = Pick<
  Announcement,
  'roles' | 'addrs' | 'version' | 'catalog' | 'instances' | 'capacity' | 'drain' | 'scale'
>

/** Top-level fields sent whole when they change. */
const WHOLE = ['roles', 'addrs', 'version', 'catalog', 'drain', 'scale'] as const
/** Of those, the ones a member may drop (sent in `unset`). */
const OPTIONAL = new Set<string>(['drain', 'scale'])

export interface LoadLimits {
  /** Least time (ms) between two sends of one app's requests in flight, when nothing else of the app changed. */
  inFlightMs: number
  /** Least time (ms) between two sends of the CPU load, and the least change (per core) worth one. */
  cpuLoadMs: number
  cpuLoadStep: number
}

export const DEFAULT_LOAD_LIMITS: LoadLimits = {
  inFlightMs: IN_FLIGHT_DELTA_MS,
  cpuLoadMs: CPU_LOAD_DELTA_MS,
  cpuLoadStep: CPU_LOAD_STEP
}

/** Capacity keys that are load figures (rate-limited); the others (slots, memory) change with instances: at once. */
const LOAD_CAPACITY = new Set(['cpuLoad'])

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** An app's instances without its requests in flight: what must travel at once when it changes. */
function structure(i: Announcement['instances'][string] | undefined): string {
  if (i === undefined) return ''
  const { inFlight: _inFlight, detail, ...rest } = i
  return JSON.stringify({ ...rest, detail: detail?.map(({ inFlight: _f, ...d }) => d) })
}

/**
 * This node's side: holds the version its peers have (`sent`, seq and all) and turns the current state into the next
 * delta. A load figure that changed too soon after its last send stays out of the delta (and so out of `sent`), so
 * that a later delta carries it: nothing is lost, only late.
 */
export class DeltaSender {
  private current: Announcement
  /** When each load figure ('i:APP', 'c:KEY') was last sent (ms). */
  private readonly loadSentAt = new Map<string, number>()

  constructor(
    initial: Announcement,
    private readonly limits: LoadLimits = DEFAULT_LOAD_LIMITS
  ) {
    this.current = initial
  }

  /** The version peers hold: what a full announcement sends, so that the next delta applies on it. */
  get sent(): Announcement {
    return this.current
  }

  /** Replaces the version outright (a full announcement of a new state, e.g. the leave). */
  reset(a: Announcement): void {
    this.current = a
  }

  /**
   * The delta from the sent version to `state`, or undefined when nothing is due. `scale` (≥ 1) stretches the load
   * figures' intervals (membership scales it with the cluster's size, so that the cluster's total stays flat); `force`
   * sends every change now.
   */
  next(state: State, now: number, opts: { scale?: number; force?: boolean } = {}): Delta | undefined {
    const scale = Math.max(1, opts.scale ?? 1)
    const force = opts.force === true
    const prev = this.current
    const d: Delta = { v: 1, peer: prev.peer, seq: prev.seq + 1, ts: now }
    const set: Record<string, unknown> = {}
    const unset: Array<'drain' | 'scale'> = []
    for (const k of WHOLE) {
      if (same(prev[k], state[k])) continue
      if (state[k] === undefined && OPTIONAL.has(k)) unset.push(k as 'drain' | 'scale')
      else set[k] = state[k]
    }
    const due = (key: string, ms: number): boolean => {
      const at = this.loadSentAt.get(key)
      return force || at === undefined || now - at >= ms * scale
    }
    const instances: NonNullable<Delta['instances']> = {}
    const sentLoad: string[] = []
    for (const app of new Set([...Object.keys(prev.instances), ...Object.keys(state.instances)])) {
      const was = prev.instances[app]
      const is = state.instances[app]
      if (is === undefined) {
        if (was !== undefined) instances[app] = null
        continue
      }
      if (same(was, is)) continue
      // Only its requests in flight moved: at most once per interval.
      if (structure(was) === structure(is) && !due(`i:${app}`, this.limits.inFlightMs)) continue
      instances[app] = is
      sentLoad.push(`i:${app}`)
    }
    const capacity: NonNullable<Delta['capacity']> = {}
    for (const key of new Set([...Object.keys(prev.capacity), ...Object.keys(state.capacity)])) {
      const was = prev.capacity[key]
      const is = state.capacity[key] as number | undefined
      if (was === is) continue
      if (is === undefined) {
        capacity[key] = null
        continue
      }
      if (LOAD_CAPACITY.has(key) && was !== undefined) {
        if (!force && Math.abs(is - was) < this.limits.cpuLoadStep) continue
        if (!due(`c:${key}`, this.limits.cpuLoadMs)) continue
      }
      capacity[key] = is
      if (LOAD_CAPACITY.has(key)) sentLoad.push(`c:${key}`)
    }
    if (Object.keys(set).length > 0) d.set = set as Delta['set']
    if (unset.length > 0) d.unset = unset
    if (Object.keys(instances).length > 0) d.instances = instances
    if (Object.keys(capacity).length > 0) d.capacity = capacity
    if (d.set === undefined && d.unset === undefined && d.instances === undefined && d.capacity === undefined)
      return undefined
    for (const k of sentLoad) this.loadSentAt.set(k, now)
    this.current = applyDelta(prev, d)
    return d
  }
}

/** A delta applied to the version it follows (the caller checks seq): a new announcement, the old one untouched. */
export function applyDelta(a: Announcement, d: Delta): Announcement {
  const out: Announcement = { ...a, seq: d.seq, ts: d.ts }
  if (d.set !== undefined) Object.assign(out, d.set)
  for (const k of d.unset ?? []) delete out[k]
  if (d.instances !== undefined) {
    const instances = { ...a.instances }
    for (const [app, i] of Object.entries(d.instances)) {
      if (i === null) delete instances[app]
      else instances[app] = i as Announcement['instances'][string]
    }
    out.instances = instances
  }
  if (d.capacity !== undefined) {
    const capacity = { ...a.capacity }
    for (const [k, v] of Object.entries(d.capacity)) {
      if (v === null) delete capacity[k]
      else capacity[k] = v as number
    }
    out.capacity = capacity
  }
  return out
}
