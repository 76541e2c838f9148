// A planned drain (physarum drain): the allocator takes no allocation any more and, for each app it serves, first has
// an instance made ready on another allocator within the app's hard RTT, then hands its own instances over (no new
// requests; those in flight finish, up to the deadline) and stops them. It then stays in maintenance until undone.
// SIGTERM is not this: it is the quick drain of a shutdown (InstanceManager.beforeStop). A persistent allocator keeps
// the maintenance in a file beside its key (as scale.json), so that a restart does not put a drained host back to work.
import { peerIdFromString } from '@libp2p/peer-id'
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { requestAllocation } from '../allocation/protocol.js'
import type { Membership } from '../cluster/membership/membership.js'
import type { RttService } from '../cluster/rtt.js'
import type { PhysarumNode } from '../cluster/node.js'
import type { Logger } from '../util/log.js'
import type { Instance, InstanceManager } from './instances/manager.js'
import { DRAIN_HANDOVER_MS, DRAIN_POLL_MS } from './constants.js'

export interface MovedApp {
  app: string
  /** The allocator that now has a ready instance of it. */
  to: string
  instance: string
  /** How many local instances were handed over and stopped. */
  stopped: number
  /** Requests still in flight when the deadline came (cut off by the stop). */
  cutOff: number
}

export interface DrainReport {
  state: 'maintenance'
  moved: MovedApp[]
  /** Apps that found no other allocator: their local instances keep serving (the drain cannot move them). */
  stranded: Array<{ app: string; reason: string }>
  /** Instances idle for their IdleTimeoutS: nothing to move, just stopped. */
  idleStopped: number
  tookMs: number
}

export class DrainError extends Error {
  override name = 'DrainError'
}

/** What the maintenance file holds: since when (ISO time); its presence is the maintenance. */
interface MaintenanceRecord {
  state: 'maintenance'
  since: string
}

/**
 * A maintenance that the last run of this allocator left (its file exists and holds a record): true, and the manager
 * takes no allocation and keeps no warm minimum from its start on. Called before the manager starts.
 */
export function restoreMaintenance(file: string | undefined, manager: InstanceManager, log: Logger): boolean {
  if (file === undefined) return false
  let rec: Partial<MaintenanceRecord>
  try {
    rec = JSON.parse(readFileSync(file, 'utf8')) as Partial<MaintenanceRecord>
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    // A torn or foreign file: the safe reading of "a drain was asked" is that it still holds.
    rec = { state: 'maintenance', since: '?' }
    log.warn(`maintenance file ${file} is unreadable (${(err as Error).message}): staying in maintenance`)
  }
  if (rec.state !== 'maintenance') return false
  manager.maintenance = 'maintenance'
  log.info(
    `in maintenance since ${rec.since ?? '?'} (physarum drain, before this restart): no allocations until physarum drain --undo`
  )
  return true
}

export class Drainer {
  private running?: Promise<DrainReport>

  constructor(
    private readonly components: {
      manager: InstanceManager
      node: PhysarumNode
      membership: Membership
      rtt: RttService
      log: Logger
      /** Announce at once: other proxies must see the change before the next step. */
      announce: () => void
      /** Where the maintenance is kept across restarts (beside the key); none: memory only (ephemeral). */
      stateFile?: string
    }
  ) {}

  private persist(on: boolean): void {
    const file = this.components.stateFile
    if (file === undefined) return
    try {
      if (!on) {
        rmSync(file, { force: true })
        return
      }
      const rec: MaintenanceRecord = { state: 'maintenance', since: new Date().toISOString() }
      const tmp = `${file}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 })
      renameSync(tmp, file)
    } catch (err) {
      // The drain goes on; only a restart would forget it.
      this.components.log.warn(`maintenance file ${file} cannot be written: ${(err as Error).message}`)
    }
  }

  get state(): 'serving' | 'draining' | 'maintenance' {
    return this.components.manager.maintenance ?? 'serving'
  }

  /**
   * Drains; resolves when it is done. A drain under way is not joined: it is refused (already draining). An allocator
   * in maintenance drains again (what was stranded may find another allocator now).
   */
  async drain(opts: { deadlineMs: number }): Promise<DrainReport> {
    if (this.components.manager.draining) throw new DrainError('this allocator is shutting down')
    if (this.running !== undefined)
      throw new DrainError('already draining: a drain is under way (physarum drain --undo once it is done)')
    this.running = this.run(opts.deadlineMs).finally(() => {
      this.running = undefined
    })
    return await this.running
  }

  /** Back in service: allocations again. Refused while a drain runs (it would stop instances after the undo). */
  undo(): { state: 'serving' } {
    if (this.running !== undefined) throw new DrainError('a drain is under way; undo it once it is done')
    this.components.manager.endMaintenance()
    this.persist(false)
    this.components.announce()
    this.components.log.info('maintenance ended (physarum drain --undo): taking allocations again')
    return { state: 'serving' }
  }

  /** Other allocators that could take `app`: alive, not drained, listing it, within its hard RTT; nearest first. */
  private candidates(app: string, hardRttMs: number): string[] {
    const out: Array<{ peer: string; rtt: number }> = []
    for (const m of this.components.membership.members()) {
      const a = m.announcement
      if (m.status !== 'alive' || a.drain !== undefined || !a.roles.includes('allocator')) continue
      if (!a.catalog.includes(app)) continue
      const hasOne = (a.instances[app]?.ready ?? 0) > 0
      if (!hasOne && (a.capacity.slotsFree ?? 1) <= 0) continue
      const rtt = this.components.rtt.get(a.peer)?.ms ?? Infinity
      if (rtt > hardRttMs && rtt !== Infinity) continue
      out.push({ peer: a.peer, rtt })
    }
    return out.sort((x, y) => x.rtt - y.rtt).map(c => c.peer)
  }

  private async moveApp(app: string, local: Instance[], deadline: number, report: DrainReport): Promise<void> {
    const { manager, node, log } = this.components
    const spec = local[0].spec
    let to: { peer: string; id: string } | undefined
    const tried: string[] = []
    for (const peer of this.candidates(app, spec.perf.hardRttMs)) {
      const left = deadline - Date.now()
      if (left <= 0) break
      try {
        // Ready when answered (the allocator answers only then), and announced by it at once.
        const inst = await requestAllocation(node, peerIdFromString(peer), app, { timeoutMs: left })
        to = { peer, id: inst.id }
        break
      } catch (err) {
        tried.push(`${peer.slice(-8)}: ${(err as Error).message}`)
      }
    }
    if (to === undefined) {
      const reason =
        tried.length === 0
          ? `no other allocator lists ${app} within its hard RTT of ${spec.perf.hardRttMs} ms`
          : `no other allocator could start ${app} (${tried.join('; ')})`
      log.warn(`drain: ${reason}; its ${local.length} instance(s) here keep serving`)
      report.stranded.push({ app, reason })
      return
    }
    log.info(`drain: ${app} is ready on ${to.peer} (instance ${to.id}); handing over ${local.length} instance(s)`)
    // The proxies learn of the replacement (gossip, a few ms) before the local instances take no new request.
    await sleep(DRAIN_HANDOVER_MS)
    for (const inst of local) manager.handOver(inst)
    this.components.announce()
    while (local.some(i => i.inFlight > 0) && Date.now() < deadline) await sleep(DRAIN_POLL_MS)
    const cutOff = local.reduce((n, i) => n + i.inFlight, 0)
    if (cutOff > 0) log.warn(`drain: deadline reached with ${cutOff} request(s) of ${app} in flight; stopping anyway`)
    await Promise.all(local.map(async i => await manager.remove(i, 'drained (physarum drain)')))
    report.moved.push({ app, to: to.peer, instance: to.id, stopped: local.length, cutOff })
  }

  private async run(deadlineMs: number): Promise<DrainReport> {
    const { manager, log } = this.components
    const started = Date.now()
    const deadline = started + deadlineMs
    manager.maintenance = 'draining'
    // Before anything moves: an allocator that crashes mid-drain comes back in maintenance, not taking work.
    this.persist(true)
    this.components.announce()
    log.info(`drain: taking no allocations; moving the instances away (deadline ${Math.round(deadlineMs / 1000)} s)`)
    const report: DrainReport = { state: 'maintenance', moved: [], stranded: [], idleStopped: 0, tookMs: 0 }
    const byApp = new Map<string, Instance[]>()
    const idle: Instance[] = []
    for (const inst of manager.instances.values()) {
      if (inst.state !== 'ready') continue
      // An instance idle for its IdleTimeoutS would be culled anyway: no traffic to move.
      if (inst.inFlight === 0 && started - inst.lastUsed >= inst.spec.idleTimeoutS * 1000) idle.push(inst)
      else byApp.set(inst.app, [...(byApp.get(inst.app) ?? []), inst])
    }
    await Promise.all(idle.map(async i => await manager.remove(i, 'idle, drained (physarum drain)')))
    report.idleStopped = idle.length
    await Promise.all([...byApp].map(async ([app, local]) => await this.moveApp(app, local, deadline, report)))
    manager.maintenance = 'maintenance'
    this.components.announce()
    report.tookMs = Date.now() - started
    log.info(
      `drain: done in ${report.tookMs} ms; ${report.moved.length} app(s) moved, ${report.stranded.length} stranded; in maintenance until physarum drain --undo`
    )
    return report
  }
}
