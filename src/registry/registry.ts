// The instances this agent hosts without having started them: registered over the admin
// API (physarum register) or by a server-mode proxy for its own app. Each is
// health-checked on its interval, announced while its check passes, served by this host's
// forwarding server, and dropped when its TTL lapses without a refresh or it is
// deregistered. One mechanism for every user-run instance.
import { EventEmitter } from 'node:events'
import type { Startable } from '@libp2p/interface'
import type { Pool } from 'undici'
import { checkAddress } from '../catalog/health.js'
import { APP_DEFAULTS } from '../config/defaults.js'
import type { AppProtocol, AppSpec } from '../catalog/catalog.js'
import type { AppInstances } from '../cluster/membership/announcement.js'
import type { ForwardTarget, InstanceSource } from '../forward/routing.js'
import { instancePool } from '../forward/serve.js'
import { hostPort } from '../util/http.js'
import { debugOn, type Logger } from '../util/log.js'
import { MAX_DETAIL, MAX_REGISTRATIONS, TTL_SWEEP_MS } from './constants.js'
import { afterCheck, announced, initialState, lapsed, refreshed, type RegistrationState } from './state.js'

export interface Check {
  tcp: boolean
  path: string
  intervalMs: number
  timeoutMs: number
  failureThreshold: number
}

export interface Registration {
  app: string
  host: string
  port: number
  check: Check
  ttlMs?: number
  /** What the instance speaks (the catalog's Protocol of the app, else http1). */
  protocol?: AppProtocol
  /** Who registered it: the API, or the server-mode proxy itself. */
  source: 'api' | 'server-mode'
}

export interface Entry extends Registration {
  id: string
  state: RegistrationState
  inFlight: number
  registeredAt: number
  lastCheckAt?: number
  pool: Pool
  timer?: NodeJS.Timeout
  /** A check is under way: the next tick waits for it (a slow app gets no pile of checks). */
  checking?: boolean
}

/** One registration as the admin API shows it. */
export interface RegistrationView {
  id: string
  app: string
  address: string
  source: string
  health: string
  announced: boolean
  check: string
  intervalS: number
  ttlS: number | null
  expiresInS: number | null
  inFlight: number
  registeredAt: string
}

export interface RegistryEvents {
  /** What this agent announces changed (an instance passed, failed, came or went). */
  change: []
  removed: [entry: Entry, reason: string]
}

export class RegistryFullError extends Error {
  override name = 'RegistryFullError'
}

/** The check an app gets when the registration names none: its catalog Health, else the defaults. */
export function defaultCheck(spec: AppSpec | undefined): Check {
  const d = APP_DEFAULTS.Health
  const h = spec?.health
  return {
    tcp: h?.tcp ?? d.Tcp,
    path: h?.path ?? d.Path,
    intervalMs: h?.intervalMs ?? d.IntervalMs,
    timeoutMs: h?.timeoutMs ?? d.TimeoutMs,
    failureThreshold: h?.failureThreshold ?? d.FailureThreshold
  }
}

export class Registry extends EventEmitter<RegistryEvents> implements Startable {
  private readonly entries = new Map<string, Entry>()
  private sweeper?: NodeJS.Timeout
  private started = false

  constructor(
    private readonly components: { log: Logger },
    private readonly init: { peer: string }
  ) {
    super()
  }

  async start(): Promise<void> {
    this.started = true
    this.sweeper = setInterval(() => {
      this.sweep()
    }, TTL_SWEEP_MS)
    this.sweeper.unref()
  }

  private keyOf(app: string, host: string, port: number): string {
    return `${app} ${hostPort(host, port)}`
  }

  private idFor(port: number): string {
    const base = `local-${this.init.peer.slice(-6)}-${port}`
    const taken = new Set([...this.entries.values()].map(e => e.id))
    if (!taken.has(base)) return base
    let n = 2
    while (taken.has(`${base}-${n}`)) n++
    return `${base}-${n}`
  }

  /**
   * Registers (or re-registers: same app and address, new check and TTL) an instance, and resolves once its first
   * check is done, with its entry.
   */
  async register(r: Registration): Promise<Entry> {
    const key = this.keyOf(r.app, r.host, r.port)
    const old = this.entries.get(key)
    if (old === undefined && this.entries.size >= MAX_REGISTRATIONS)
      throw new RegistryFullError(`this agent holds its maximum of ${MAX_REGISTRATIONS} registrations`)
    const now = Date.now()
    let entry: Entry
    if (old !== undefined) {
      clearInterval(old.timer)
      entry = Object.assign(old, r, { state: { ...refreshed(old.state, now, r.ttlMs) } })
      if (r.ttlMs === undefined) delete entry.state.expiresAt
      if (r.ttlMs === undefined) delete entry.ttlMs
    } else {
      entry = {
        ...r,
        id: this.idFor(r.port),
        state: initialState(now, r.ttlMs),
        inFlight: 0,
        registeredAt: now,
        pool: instancePool(r.host, r.port)
      }
      this.entries.set(key, entry)
      this.components.log.info(
        `registered ${entry.app} at ${hostPort(r.host, r.port)} (${r.source}${r.ttlMs !== undefined ? `, TTL ${r.ttlMs / 1000} s` : ''})`
      )
    }
    await this.check(entry)
    if (this.entries.get(key) === entry) {
      entry.timer = setInterval(() => {
        void this.check(entry)
      }, entry.check.intervalMs)
      entry.timer.unref()
    }
    return entry
  }

  private async check(e: Entry): Promise<void> {
    if (e.checking === true) return
    e.checking = true
    let ok: boolean
    try {
      ok = await checkAddress(e.check, e.host, e.port, e.check.timeoutMs)
    } finally {
      e.checking = false
    }
    if (this.entries.get(this.keyOf(e.app, e.host, e.port)) !== e) return
    const now = Date.now()
    const before = announced(e.state, now)
    e.state = afterCheck(e.state, ok, e.check.failureThreshold)
    e.lastCheckAt = now
    const after = announced(e.state, now)
    if (before !== after) {
      const where = hostPort(e.host, e.port)
      if (after) this.components.log.info(`instance of ${e.app} at ${where} passes its check: announced`)
      else
        this.components.log.warn(
          `instance of ${e.app} at ${where} failed ${e.state.failures} check(s) in a row: withdrawn until it passes`
        )
      this.emit('change')
    }
  }

  /** A TTL pass of one registration (address given) or every one of the app; the entries refreshed. */
  refresh(app: string, address?: { host: string; port: number }): Entry[] {
    const now = Date.now()
    const hit = this.select(app, address)
    for (const e of hit) e.state = refreshed(e.state, now, e.ttlMs)
    return hit
  }

  /** Deregisters one registration (address given) or every one of the app; the entries removed. */
  deregister(app: string, address?: { host: string; port: number }): Entry[] {
    const hit = this.select(app, address)
    for (const e of hit) this.drop(e, 'deregistered')
    return hit
  }

  private select(app: string, address?: { host: string; port: number }): Entry[] {
    if (address !== undefined) {
      const e = this.entries.get(this.keyOf(app, address.host, address.port))
      return e === undefined ? [] : [e]
    }
    return [...this.entries.values()].filter(e => e.app === app)
  }

  private drop(e: Entry, reason: string): void {
    const key = this.keyOf(e.app, e.host, e.port)
    if (this.entries.get(key) !== e) return
    this.entries.delete(key)
    clearInterval(e.timer)
    this.components.log.info(`${e.app} at ${hostPort(e.host, e.port)} withdrawn: ${reason}`)
    void e.pool.close().catch(debugOn(this.components.log, 'close of a registered instance pool'))
    this.emit('removed', e, reason)
    this.emit('change')
  }

  private sweep(): void {
    const now = Date.now()
    for (const e of [...this.entries.values()]) {
      if (lapsed(e.state, now)) this.drop(e, `its TTL of ${(e.ttlMs ?? 0) / 1000} s lapsed without a refresh`)
    }
  }

  /** Whether any registration of the app is here (ready or not). */
  serves(app: string): boolean {
    for (const e of this.entries.values()) if (e.app === app) return true
    return false
  }

  /** The announced (passing, within TTL) instances of the app. */
  ready(app: string): Entry[] {
    const now = Date.now()
    return [...this.entries.values()].filter(e => e.app === app && announced(e.state, now))
  }

  byId(id: string): Entry | undefined {
    for (const e of this.entries.values()) if (e.id === id) return e
    return undefined
  }

  /** The least loaded announced instance of the app (a proxy's shortcut to its own). */
  leastLoaded(app: string): Entry | undefined {
    let best: Entry | undefined
    for (const e of this.ready(app)) if (best === undefined || e.inFlight < best.inFlight) best = e
    return best
  }

  /** For the host's forwarding router (forward/routing.ts). */
  source(): InstanceSource<Entry> {
    return {
      draining: () => !this.started,
      serves: app => this.serves(app),
      ready: app => this.ready(app),
      target: e => this.target(e)
    }
  }

  target(e: Entry): ForwardTarget {
    return {
      app: e.app,
      instanceId: e.id,
      host: e.host,
      port: e.port,
      protocol: e.protocol ?? 'http1',
      begin: () => {
        e.inFlight++
        let ended = false
        return () => {
          if (ended) return
          ended = true
          e.inFlight--
        }
      }
    }
  }

  /** What this agent announces of them, per app. */
  instances(): Record<string, AppInstances> {
    const out: Record<string, AppInstances> = {}
    for (const e of this.entries.values()) {
      if (!announced(e.state, Date.now())) continue
      const a = (out[e.app] ??= { ready: 0, inFlight: 0, ids: [], detail: [] })
      a.ready++
      a.inFlight += e.inFlight
      ;(a.ids as string[]).push(e.id)
      const detail = a.detail as NonNullable<AppInstances['detail']>
      if (detail.length < MAX_DETAIL)
        detail.push({ id: e.id, address: hostPort(e.host, e.port), state: 'ready', inFlight: e.inFlight })
    }
    return out
  }

  list(): RegistrationView[] {
    const now = Date.now()
    return [...this.entries.values()].map(e => ({
      id: e.id,
      app: e.app,
      address: hostPort(e.host, e.port),
      source: e.source,
      health: e.state.health,
      announced: announced(e.state, now),
      check: e.check.tcp ? 'tcp' : `http ${e.check.path}`,
      intervalS: e.check.intervalMs / 1000,
      ttlS: e.ttlMs !== undefined ? e.ttlMs / 1000 : null,
      expiresInS: e.state.expiresAt !== undefined ? Math.max(0, (e.state.expiresAt - now) / 1000) : null,
      inFlight: e.inFlight,
      registeredAt: new Date(e.registeredAt).toISOString()
    }))
  }

  /** Stops taking requests for its instances (DRAINING); they stay until stop. */
  async beforeStop(): Promise<void> {
    this.started = false
  }

  async stop(): Promise<void> {
    this.started = false
    clearInterval(this.sweeper)
    for (const e of [...this.entries.values()]) {
      clearInterval(e.timer)
      await e.pool.close().catch(debugOn(this.components.log, 'close of a registered instance pool'))
    }
    this.entries.clear()
  }
}

/** Merges a registry's announced instances into another source's (an allocator's own). */
export function mergeInstances(
  a: Record<string, AppInstances>,
  b: Record<string, AppInstances>
): Record<string, AppInstances> {
  const out: Record<string, AppInstances> = { ...a }
  for (const [app, x] of Object.entries(b)) {
    const y = out[app]
    out[app] =
      y === undefined
        ? x
        : {
            ...y,
            ready: y.ready + x.ready,
            inFlight: y.inFlight + x.inFlight,
            ids: [...(y.ids ?? []), ...(x.ids ?? [])],
            detail: [...(y.detail ?? []), ...(x.detail ?? [])].slice(0, MAX_DETAIL)
          }
  }
  return out
}
