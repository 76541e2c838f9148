// The allocator's instances: start → ready → (serving) → idle → stopped. Capacity
// (slots, per-app limits, memory budget), single-flight starts, readiness before any
// answer, liveness checks, idle culling, restart recovery and drain all live here.
import { EventEmitter } from 'node:events'
import type { Startable } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { cpus, loadavg } from 'node:os'
import type { AppSpec, Catalog } from '../../catalog/catalog.js'
import type { Runtime, RuntimeInstance } from '../runtime/runtime.js'
import { StartError } from '../runtime/runtime.js'
import type { Logger } from '../../util/log.js'
import { AllocationError } from '../../allocation/protocol.js'
import type { LocalState } from '../../cluster/membership/membership.js'
import { checkOnce } from '../../catalog/health.js'
import { refusal, usage, type Usage } from './capacity.js'
import { mayCull, overMax, scaleRefusal, toStart, type Holder, type ScaleTarget } from './scale.js'
import {
  ADOPT_CHECK_TIMEOUT_MS,
  CULL_INTERVAL_MS,
  DRAIN_POLL_MS,
  HEALTH_TICK_MS,
  MAX_DETAIL,
  READY_POLL_MS,
  WARM_RETRY_MS,
  WARM_WARN_INTERVAL_MS,
  STOP_GRACE_MS
} from '../constants.js'
import { setTimeout as sleep } from 'node:timers/promises'

/** draining: handed over by a drain (physarum drain): no new requests, its in-flight ones finish, then it stops. */
export type InstanceState = 'starting' | 'ready' | 'draining' | 'stopping'

export interface Instance {
  id: string
  app: string
  spec: AppSpec
  state: InstanceState
  rt?: RuntimeInstance
  inFlight: number
  lastUsed: number
  startedAt: number
  readyAt?: number
  healthFailures: number
  nextHealthAt: number
  adopted: boolean
  /** An idle cull that waits for same-host proxies to stop sending it requests (the fast path): the reason. */
  culling?: string
}

export interface ManagerInit {
  maxInstances: number
  memoryMB: number
  /** How often readiness is polled while an instance starts (ms). */
  readyPollMs?: number
  cullIntervalMs?: number
  /** Grace between SIGTERM and kill when stopping an instance (ms). */
  stopGraceMs?: number
  /** How long beforeStop waits for requests in flight (ms; Allocator.DrainTimeoutS). */
  drainTimeoutMs?: number
  /** Leave the instances running on stop, for the next start to adopt (--keep-instances). */
  keepInstances?: boolean
}

/** What the manager knows of the rest of the cluster, for an app's cluster-wide scale (physarum scale). */
export interface ClusterView {
  self: string
  /** The app's scale record, if one was set. */
  target: (app: string) => ScaleTarget | undefined
  /** Instances of the app (starting or ready) that other members announce. */
  othersTotal: (app: string) => number
  /** The other alive allocators that list the app and take allocations, with their counts. */
  otherHolders: (app: string) => Holder[]
}

export interface ManagerEvents {
  /** Something announced changed (an instance became ready, left, or its load moved). */
  change: []
  removed: [inst: Instance, reason: string]
}

export class InstanceManager extends EventEmitter<ManagerEvents> implements Startable {
  readonly instances = new Map<string, Instance>()
  private readonly starting = new Map<string, Promise<Instance>>()
  private timers: NodeJS.Timeout[] = []
  private ensuring = false
  private readonly warnedAt = new Map<string, number>()
  private readonly failedAt = new Map<string, number>()
  draining = false
  /** A planned drain (physarum drain) is under way or done: no allocations, no warm minimum, until undone. */
  maintenance?: 'draining' | 'maintenance'

  constructor(
    private readonly components: {
      runtime: Runtime
      catalog: Catalog
      log: Logger
      onCull?: (app: string, reason: string) => void
      cluster?: ClusterView
      /** Whether a same-host proxy may send the instance requests straight over loopback (../../fastpath/host.ts). */
      fastPathUsed?: (id: string) => boolean
    },
    private init: ManagerInit
  ) {
    super()
    components.runtime.onEvent(e => {
      const inst = this.instances.get(e.id)
      if (inst === undefined || inst.state === 'stopping') return
      // A dead instance is withdrawn at once, not at the next health check.
      void this.remove(inst, e.reason)
    })
  }

  get runtime(): Runtime {
    return this.components.runtime
  }

  async start(): Promise<void> {
    await this.reconcile()
    this.timers.push(
      setInterval(() => {
        this.cull()
        // A scale record set or changed elsewhere, or an instance gone on another host: this one's share.
        if (this.components.cluster !== undefined) void this.ensureMinimum()
      }, this.init.cullIntervalMs ?? CULL_INTERVAL_MS)
    )
    this.timers.push(
      setInterval(() => {
        void this.checkHealth()
      }, HEALTH_TICK_MS)
    )
    for (const t of this.timers) t.unref()
    void this.ensureMinimum()
  }

  /** Restart recovery: adopt our healthy leftovers, remove the rest. No orphans. */
  private async reconcile(): Promise<void> {
    let own: RuntimeInstance[]
    try {
      own = await this.components.runtime.listOwn()
    } catch (err) {
      this.components.log.warn(`cannot list leftover instances: ${(err as Error).message}`)
      return
    }
    await Promise.all(
      own.map(async rt => {
        const spec = this.components.catalog.get(rt.app)
        const healthy =
          spec !== undefined &&
          rt.port > 0 &&
          (await this.components.runtime.isRunning(rt)) &&
          (await checkOnce(spec, rt.host, rt.port, ADOPT_CHECK_TIMEOUT_MS))
        if (spec !== undefined && healthy) {
          const now = Date.now()
          this.instances.set(rt.id, {
            id: rt.id,
            app: rt.app,
            spec,
            state: 'ready',
            rt,
            inFlight: 0,
            lastUsed: now,
            startedAt: rt.startedAt,
            readyAt: now,
            healthFailures: 0,
            nextHealthAt: now + spec.health.intervalMs,
            adopted: true
          })
          this.components.log.info(`adopted instance ${rt.id} of ${rt.app} left by a previous run`, { port: rt.port })
        } else {
          this.components.log.info(
            `removing leftover instance ${rt.id} of ${rt.app || '?'} (${spec === undefined ? 'not in the catalog' : 'not healthy'})`
          )
          await this.components.runtime.stop(rt, { graceMs: this.init.stopGraceMs ?? STOP_GRACE_MS }).catch(() => {})
        }
      })
    )
    if (own.length > 0) this.emit('change')
  }

  /** Keeps MinInstances of every app warm here, and this allocator's share of each app's cluster minimum. */
  private async ensureMinimum(): Promise<void> {
    if (this.ensuring) return
    this.ensuring = true
    try {
      for (const spec of this.components.catalog.list()) {
        while (!this.draining && this.maintenance === undefined && this.count(spec.name) < spec.minInstances) {
          if (!(await this.warm(spec, spec.minInstances))) break
        }
        const cluster = this.components.cluster
        const target = cluster?.target(spec.name)
        if (cluster === undefined || target === undefined || this.draining || this.maintenance !== undefined) continue
        // A full allocator is no holder: the others deal its share among themselves.
        const full = refusal(this.usage(spec.name), this.init, {
          name: spec.name,
          maxInstances: spec.maxInstances,
          memoryMB: spec.resources.memoryMB
        })
        const holders = [
          ...cluster.otherHolders(spec.name),
          ...(full === undefined ? [{ peer: cluster.self, count: this.count(spec.name) }] : [])
        ]
        const n = toStart(target, holders, cluster.self, this.clusterTotal(spec.name))
        for (let i = 0; i < n && !this.draining && this.maintenance === undefined; i++)
          if (!(await this.warm(spec, target.min))) break
      }
    } finally {
      this.ensuring = false
    }
  }

  /** One more warm instance; false (logged, once a minute per app: the tick retries every second) when none starts. */
  private async warm(spec: AppSpec, min: number): Promise<boolean> {
    // Backs off after a failure: a broken app is not spawned every second.
    if (Date.now() - (this.failedAt.get(spec.name) ?? 0) < WARM_RETRY_MS) return false
    try {
      await this.allocate(spec.name, { fresh: true })
      this.warnedAt.delete(spec.name)
      this.failedAt.delete(spec.name)
      return true
    } catch (err) {
      const now = Date.now()
      this.failedAt.set(spec.name, now)
      if (now - (this.warnedAt.get(spec.name) ?? 0) >= WARM_WARN_INTERVAL_MS) {
        this.warnedAt.set(spec.name, now)
        this.components.log.warn(`cannot keep ${min} instance(s) of ${spec.name} warm: ${(err as Error).message}`)
      }
      return false
    }
  }

  /** Instances of the app starting or ready across the cluster: here and as the others announce. */
  private clusterTotal(app: string): number {
    return this.count(app) + (this.components.cluster?.othersTotal(app) ?? 0)
  }

  private count(app?: string, states: InstanceState[] = ['starting', 'ready']): number {
    let n = 0
    for (const i of this.instances.values()) if ((app === undefined || i.app === app) && states.includes(i.state)) n++
    return n
  }

  /** Slots and memory in use, for the capacity decision (./capacity.ts). */
  private usage(app?: string): Usage {
    return usage(
      [...this.instances.values()].map(i => ({
        app: i.app,
        state: i.state,
        memoryMB: i.spec.resources.memoryMB,
        running: i.rt !== undefined
      })),
      app
    )
  }

  readyOf(app: string): Instance[] {
    return [...this.instances.values()].filter(i => i.app === app && i.state === 'ready')
  }

  /**
   * A ready instance of `app`: an existing one unless `fresh`, else a new one. Resolves
   * only once the instance passed its readiness check; concurrent calls for an app that
   * is starting share that start.
   */
  async allocate(app: string, opts: { fresh?: boolean } = {}): Promise<{ instance: Instance; started: boolean }> {
    if (this.draining) throw new AllocationError('DRAINING', 'this allocator is shutting down')
    if (this.maintenance !== undefined)
      throw new AllocationError('DRAINING', 'this allocator is drained for maintenance (physarum drain --undo ends it)')
    const spec = this.components.catalog.get(app)
    if (spec === undefined) throw new AllocationError('UNKNOWN_APP', `app ${app} is not in this allocator's catalog`)
    const pending = this.starting.get(app)
    if (pending !== undefined) return { instance: await pending, started: true }
    if (opts.fresh !== true) {
      const ready = this.readyOf(app).sort((a, b) => a.inFlight - b.inFlight)[0]
      if (ready !== undefined) {
        // Handed out: it must not be culled before the requester's first request arrives.
        ready.lastUsed = Date.now()
        return { instance: ready, started: false }
      }
    }
    const full = refusal(this.usage(app), this.init, {
      name: app,
      maxInstances: spec.maxInstances,
      memoryMB: spec.resources.memoryMB
    })
    if (full !== undefined) throw new AllocationError('NO_CAPACITY', full)
    const over = scaleRefusal(app, this.components.cluster?.target(app), this.clusterTotal(app))
    if (over !== undefined) throw new AllocationError('NO_CAPACITY', over)
    const p = this.launch(spec)
    this.starting.set(app, p)
    try {
      return { instance: await p, started: true }
    } finally {
      this.starting.delete(app)
    }
  }

  private async launch(spec: AppSpec): Promise<Instance> {
    const id = randomBytes(6).toString('hex')
    const now = Date.now()
    const inst: Instance = {
      id,
      app: spec.name,
      spec,
      state: 'starting',
      inFlight: 0,
      lastUsed: now,
      startedAt: now,
      healthFailures: 0,
      nextHealthAt: 0,
      adopted: false
    }
    this.instances.set(id, inst)
    this.emit('change')
    const deadline = now + spec.startTimeoutS * 1000
    // remove() may run at any await below (shutdown, a death event): a closure, so that
    // TypeScript does not narrow the state across those awaits.
    const removed = (): boolean => inst.state === 'stopping' || !this.instances.has(id)
    try {
      inst.rt = await this.components.runtime.start(spec, id)
    } catch (err) {
      this.instances.delete(id)
      this.emit('change')
      throw new AllocationError(
        'START_FAILED',
        err instanceof StartError ? err.message : `cannot start ${spec.name}: ${(err as Error).message}`
      )
    }
    if (removed()) {
      // Removed while the runtime was starting it (shutdown, or a death event): remove()
      // had nothing to stop yet, so what the runtime just started is stopped here.
      await this.components.runtime.stop(inst.rt, { graceMs: 0 }).catch(() => {})
      throw new AllocationError('START_FAILED', `instance ${id} of ${spec.name} was removed while it started`)
    }
    const poll = this.init.readyPollMs ?? READY_POLL_MS
    while (true) {
      if (removed())
        throw new AllocationError('START_FAILED', `instance ${id} of ${spec.name} exited before it was ready`)
      const left = deadline - Date.now()
      if (left <= 0) break
      const passed = await checkOnce(
        spec,
        inst.rt.host,
        inst.rt.port,
        Math.min(spec.health.timeoutMs, Math.max(left, 10))
      )
      // Removed during the check: the loop's first line says so, never 'ready'.
      if (removed()) continue
      if (passed) {
        inst.state = 'ready'
        inst.readyAt = Date.now()
        inst.lastUsed = inst.readyAt
        inst.nextHealthAt = inst.readyAt + spec.health.intervalMs
        this.components.log.info(`instance ${id} of ${spec.name} ready in ${inst.readyAt - now} ms`, {
          port: inst.rt.port,
          runtime: this.components.runtime.kind
        })
        this.emit('change')
        return inst
      }
      if (!(await this.components.runtime.isRunning(inst.rt))) {
        await this.remove(inst, 'exited before it was ready')
        throw new AllocationError('START_FAILED', `instance of ${spec.name} exited before it was ready`)
      }
      await sleep(poll)
    }
    await this.remove(inst, `not ready within ${spec.startTimeoutS} s`)
    throw new AllocationError(
      'NOT_READY',
      `${spec.name} did not pass its readiness check within ${spec.startTimeoutS} s; the instance was removed`
    )
  }

  /** Marks a request in flight on an instance; returns the function that ends it. */
  begin(inst: Instance): () => void {
    inst.inFlight++
    inst.lastUsed = Date.now()
    let ended = false
    return () => {
      if (ended) return
      ended = true
      inst.inFlight--
      inst.lastUsed = Date.now()
    }
  }

  /** Withdraws (announce first), then stops. */
  async remove(inst: Instance, reason: string): Promise<void> {
    if (inst.state === 'stopping') return
    inst.state = 'stopping'
    this.emit('change')
    this.components.log.info(`stopping instance ${inst.id} of ${inst.app}: ${reason}`)
    if (inst.rt !== undefined)
      await this.components.runtime.stop(inst.rt, { graceMs: this.init.stopGraceMs ?? STOP_GRACE_MS }).catch(err => {
        this.components.log.warn(`stop of ${inst.id} failed: ${(err as Error).message}`)
      })
    this.instances.delete(inst.id)
    this.emit('removed', inst, reason)
    this.emit('change')
    // Keep MinInstances warm after a death, a failed health check or a cull.
    if (!this.draining && this.maintenance === undefined && this.timers.length > 0) void this.ensureMinimum()
  }

  /**
   * A drain hands the instance over: it leaves the announcements and takes no new request (a proxy that still names
   * it is refused with NO_INSTANCE and picks again); what is in flight on it goes on.
   */
  handOver(inst: Instance): void {
    if (inst.state !== 'ready') return
    inst.state = 'draining'
    this.emit('change')
  }

  /** Ends maintenance (physarum drain --undo): allocations again, and the warm minimum. */
  endMaintenance(): void {
    this.maintenance = undefined
    this.emit('change')
    if (!this.draining && this.timers.length > 0) void this.ensureMinimum()
  }

  /**
   * Idle culling: nothing in flight for IdleTimeoutS, never below MinInstances here nor below the app's cluster
   * minimum; an idle instance above the cluster maximum goes at once.
   */
  private cull(): void {
    if (this.draining) return
    const now = Date.now()
    const totals = new Map<string, number>()
    const total = (app: string): number => totals.get(app) ?? this.clusterTotal(app)
    for (const inst of this.instances.values()) {
      // Withdrawn from the fast path by an earlier cull: it goes once nothing is in flight or held on it.
      if (inst.state === 'draining' && inst.culling !== undefined) {
        if (inst.inFlight === 0) void this.remove(inst, inst.culling)
        continue
      }
      if (inst.state !== 'ready' || inst.inFlight > 0) continue
      const target = this.components.cluster?.target(inst.app)
      const over = overMax(target, total(inst.app))
      if (!over && now - inst.lastUsed < inst.spec.idleTimeoutS * 1000) continue
      if (this.count(inst.app, ['ready']) <= inst.spec.minInstances) continue
      if (!mayCull(target, total(inst.app))) continue
      totals.set(inst.app, total(inst.app) - 1)
      this.components.onCull?.(inst.app, over ? 'scale' : 'idle')
      const reason = over
        ? `above the cluster maximum of ${target?.max}`
        : `idle for ${Math.round((now - inst.lastUsed) / 1000)} s`
      // A same-host proxy may send it a request at any moment, unseen until its next sync: withdrawn first, so that
      // none lands on an instance being stopped; removed at a later tick, once the proxies say they stopped.
      if (this.components.fastPathUsed?.(inst.id) === true) {
        inst.culling = reason
        this.handOver(inst)
        continue
      }
      void this.remove(inst, reason)
    }
  }

  private async checkHealth(): Promise<void> {
    const now = Date.now()
    await Promise.all(
      [...this.instances.values()].map(async inst => {
        if (inst.state !== 'ready' || inst.rt === undefined || now < inst.nextHealthAt) return
        inst.nextHealthAt = now + inst.spec.health.intervalMs
        const ok = await checkOnce(inst.spec, inst.rt.host, inst.rt.port, inst.spec.health.timeoutMs)
        if (ok) {
          inst.healthFailures = 0
          return
        }
        inst.healthFailures++
        if (inst.healthFailures >= inst.spec.health.failureThreshold && inst.state === 'ready') {
          this.components.onCull?.(inst.app, 'unhealthy')
          await this.remove(inst, `failed ${inst.healthFailures} health checks in a row`)
        }
      })
    )
  }

  /** New limits (a config reload): they bind the next allocations; running instances stay. */
  setLimits(limits: Pick<ManagerInit, 'maxInstances' | 'memoryMB' | 'drainTimeoutMs'>): void {
    this.init = { ...this.init, ...limits }
    this.emit('change')
  }

  /**
   * Drain: refuses new allocations and requests at once (DRAINING: the proxy sends them
   * elsewhere), then waits until nothing is in flight, or drainTimeoutMs.
   */
  async beforeStop(): Promise<void> {
    this.draining = true
    const timeoutMs = this.init.drainTimeoutMs ?? 0
    const deadline = Date.now() + timeoutMs
    let inFlight = this.inFlight()
    if (inFlight > 0)
      this.components.log.info(`draining ${inFlight} request(s) in flight (up to ${timeoutMs / 1000} s)`)
    while (inFlight > 0 && Date.now() < deadline) {
      await sleep(DRAIN_POLL_MS)
      inFlight = this.inFlight()
    }
    if (inFlight > 0)
      this.components.log.warn(`${inFlight} request(s) still in flight after ${timeoutMs / 1000} s; stopping anyway`)
  }

  inFlight(): number {
    let n = 0
    for (const i of this.instances.values()) n += i.inFlight
    return n
  }

  /** Stops its timers and, unless keepInstances, every instance; then the runtime (its event watch). */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    if (this.init.keepInstances === true) {
      this.components.log.info(
        `leaving ${this.instances.size} instance(s) running (--keep-instances); the next start adopts them`
      )
    } else {
      await Promise.all(
        [...this.instances.values()].map(async i => {
          await this.remove(i, 'shutdown')
        })
      )
    }
    await this.runtime.close()
  }

  /** What the allocator announces about itself. */
  localState(): LocalState {
    const instances: LocalState['instances'] = {}
    for (const i of this.instances.values()) {
      if (i.state === 'stopping' || i.state === 'draining') continue
      const e =
        instances[i.app] ?? (instances[i.app] = { ready: 0, inFlight: 0, starting: 0, ids: [] as string[], detail: [] })
      const detail = e.detail as NonNullable<typeof e.detail>
      if (detail.length < MAX_DETAIL)
        detail.push({
          id: i.id,
          state: i.state,
          inFlight: i.inFlight,
          ...(i.rt !== undefined ? { address: `${i.rt.host}:${i.rt.port}` } : {})
        })
      if (i.state === 'ready') {
        e.ready++
        e.inFlight += i.inFlight
        ;(e.ids as string[]).push(i.id)
      } else (e.starting as number)++
    }
    const used = this.usage()
    return {
      catalog: this.components.catalog.names(),
      instances,
      ...(this.maintenance !== undefined ? { drain: this.maintenance } : {}),
      capacity: {
        slots: this.init.maxInstances,
        // In maintenance: no room, so that no proxy asks.
        slotsFree: this.maintenance !== undefined ? 0 : Math.max(0, this.init.maxInstances - used.slots),
        memoryMB: this.init.memoryMB,
        memoryFreeMB: Math.max(0, this.init.memoryMB - used.memoryMB),
        cpuLoad: Number((loadavg()[0] / Math.max(1, cpus().length)).toFixed(2))
      }
    }
  }

  /** For the admin API. */
  list(): Array<Record<string, unknown>> {
    return [...this.instances.values()].map(i => ({
      id: i.id,
      app: i.app,
      state: i.state,
      runtime: this.components.runtime.kind,
      address: i.rt !== undefined ? `${i.rt.host}:${i.rt.port}` : null,
      inFlight: i.inFlight,
      startedAt: new Date(i.startedAt).toISOString(),
      readyAt: i.readyAt !== undefined ? new Date(i.readyAt).toISOString() : null,
      lastUsed: new Date(i.lastUsed).toISOString(),
      adopted: i.adopted
    }))
  }
}
