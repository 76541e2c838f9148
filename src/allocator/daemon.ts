// The allocator daemon: an agent (node, membership, admin) plus the catalog, a runtime,
// the instance manager, the allocation server and the forwarding server, with the
// shutdown order that loses nothing: refuse, announce leaving, drain, stop instances.
import { join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { Agent, type DaemonOptions } from '../cluster/agent.js'
import type { Config } from '../config/schema.js'
import { expandHome } from '../config/files.js'
import { Catalog } from '../catalog/catalog.js'
import { InstanceManager, type ClusterView, type Instance } from './instances/manager.js'
import type { Member } from '../cluster/membership/table.js'
import { router } from '../forward/routing.js'
import { mergeInstances, Registry } from '../registry/registry.js'
import { registrationRoutes } from '../registry/routes.js'
import { AllocationServer } from '../allocation/server.js'
import { ForwardServer } from '../forward/serve.js'
import { DockerRuntime, dockerAvailable } from './runtime/docker.js'
import { ProcessRuntime } from './runtime/process.js'
import type { Runtime } from './runtime/runtime.js'
import type { Logger } from '../util/log.js'
import { allocatorMetrics, instancesGauge } from './metrics.js'
import { Watchdog, removePidFile, writePidFile } from './watchdog.js'
import { DrainError, Drainer, restoreMaintenance } from './drain.js'
import { AdminPeerServer } from '../cluster/admin/peer-server.js'
import { AdminCallError } from '../cluster/admin/protocol.js'
import { AdminError } from '../cluster/admin/errors.js'
import type { FromSchema } from '../util/ajv.js'
import { DRAIN_DEADLINE_MS } from './constants.js'
import { FastPathHost } from '../fastpath/host.js'
import { FASTPATH_PATH, reportSchema, type Report } from '../fastpath/protocol.js'

/** The body of POST /v1/drain: {} or {deadlineS} drains, {undo: true} ends the maintenance. */
const drainBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { undo: { type: 'boolean' }, deadlineS: { type: 'number', minimum: 0, maximum: 86400 } }
} as const
type DrainBody = FromSchema<typeof drainBodySchema>

export interface AllocatorOptions extends DaemonOptions {
  keepInstances?: boolean
  /** Working directory of process-runtime instances (relative Commands resolve here). */
  cwd?: string
  /** A watchdog child that removes the instances if this allocator dies (default true; ./watchdog.ts). */
  watchdog?: boolean
}

async function chooseRuntime(
  cfg: Config,
  peer: string,
  log: Logger,
  stateDir: string,
  opts: { cwd?: string; ephemeral?: boolean }
): Promise<Runtime> {
  const want = cfg.Allocator.Runtime
  // An ephemeral allocator never finds its processes again: they die with it.
  const proc = (): Runtime =>
    new ProcessRuntime({
      stateFile: join(stateDir, `instances-${peer}.json`),
      log: log.scope('app'),
      cwd: opts.cwd,
      dieWithParent: opts.ephemeral === true
    })
  if (want === 'process') return proc()
  const docker = new DockerRuntime({ peer, log: log.scope('docker') })
  if (want === 'docker') {
    if (!(await dockerAvailable()))
      throw new Error(
        'Allocator.Runtime is docker but no Docker engine answers (is dockerd running, and may this user use its socket?)'
      )
    return docker
  }
  if (await dockerAvailable()) {
    log.info('runtime: docker (a Docker engine answers)')
    return docker
  }
  log.info('runtime: process (no Docker engine answers)')
  return proc()
}

const countOf = (i: { ready: number; starting?: number } | undefined): number => (i?.ready ?? 0) + (i?.starting ?? 0)

/** The rest of the cluster as the instance manager needs it for an app's scale (from the member table). */
function clusterView(agent: Agent): ClusterView {
  const alive = (): Member[] =>
    agent.membership.members().filter(m => m.status === 'alive' && m.announcement.leaving !== true)
  return {
    self: agent.peer,
    target: app => agent.scale.get(app),
    othersTotal: app => {
      let n = 0
      for (const m of alive()) n += countOf(m.announcement.instances[app])
      return n
    },
    otherHolders: app =>
      alive()
        .filter(
          m =>
            m.announcement.roles.includes('allocator') &&
            m.announcement.catalog.includes(app) &&
            // A full one takes no share of the minimum (an older peer that does not say: it may).
            (m.announcement.capacity.slotsFree ?? 1) > 0
        )
        .map(m => ({ peer: m.announcement.peer, count: countOf(m.announcement.instances[app]) }))
  }
}

export class AllocatorDaemon {
  private stopping?: Promise<void>

  private constructor(
    readonly agent: Agent,
    readonly manager: InstanceManager,
    readonly allocation: AllocationServer,
    readonly forward: ForwardServer,
    /** Instances registered with this allocator (physarum register), beside those it started. */
    readonly registry: Registry,
    private readonly catalog: Catalog,
    private readonly log: Logger,
    /** /physarum/admin/1.0.0: drain and undo from the operators (Admin.Operators) on other hosts. */
    private readonly adminPeer: AdminPeerServer,
    private readonly lifeline: { watchdog?: Watchdog; pidFile?: string; keepInstances: boolean },
    /** What same-host proxies send its instances straight over loopback (../fastpath/host.ts). */
    readonly fastPath: FastPathHost
  ) {}

  /**
   * A new configuration (SIGHUP): the catalog (new apps can start at once; instances of a
   * removed app run on until idle), latency requirements, limits and the log level. The
   * change is announced at once.
   */
  reload(config: Config): void {
    this.catalog.update(config)
    this.manager.setLimits({
      maxInstances: config.Allocator.MaxInstances,
      memoryMB: config.Allocator.MemoryMB,
      drainTimeoutMs: config.Allocator.DrainTimeoutS * 1000
    })
    this.allocation.setRateLimit(config.Allocator.RateLimit.PerSecond, config.Allocator.RateLimit.Burst)
    this.log.setLevel(config.Log.Level)
    this.adminPeer.setOperators(config.Admin.Operators ?? [])
    this.agent.membership.announceSoon(0)
  }

  static async start(opts: AllocatorOptions): Promise<AllocatorDaemon> {
    const { config, log } = opts
    const catalog = new Catalog(config)
    let manager: InstanceManager | undefined
    let fastPath: FastPathHost | undefined
    let watchdog: Watchdog | undefined
    let pidFile: string | undefined
    let adminPeer: AdminPeerServer | undefined
    // Made once the agent (its peer ID) is: what the agent announces reads it from here.
    const hosted: { registry?: Registry } = {}
    // Beside the key file: an allocator with a persistent identity finds its processes
    // after a restart. An ephemeral one never could, so its state stays in /tmp.
    const stateDir = resolve(
      opts.ephemeral === true
        ? tmpdir()
        : config.KeyFile !== undefined
          ? join(expandHome(config.KeyFile), '..')
          : expandHome('~/.physarum')
    )
    const agent = await Agent.start({
      ...opts,
      role: 'allocator',
      // The cluster's scale records survive a restart of a persistent allocator (an ephemeral one relearns them).
      ...(opts.ephemeral === true ? {} : { scaleFile: join(stateDir, 'scale.json') }),
      localState: () => {
        const own = manager?.localState() ?? { catalog: catalog.names(), instances: {}, capacity: {} }
        return { ...own, instances: mergeInstances(own.instances, hosted.registry?.instances() ?? {}) }
      }
    })
    const reg = new Registry({ log: log.scope('registry') }, { peer: agent.peer })
    hosted.registry = reg
    try {
      reg.on('change', () => {
        agent.membership.announceSoon(0)
      })
      const metrics = allocatorMetrics(agent.metrics.registry)
      // Before anything is adopted: an old watchdog in its grace sees a successor and leaves the instances to it.
      if (opts.ephemeral !== true) writePidFile((pidFile = join(stateDir, `allocator-${agent.peer}.pid`)), log)
      const runtime = await chooseRuntime(config, agent.peer, log, stateDir, opts)
      if (opts.watchdog !== false)
        watchdog = Watchdog.start(
          {
            peer: agent.peer,
            runtime: runtime.kind,
            stateFile: join(stateDir, `instances-${agent.peer}.json`),
            pidFile,
            ephemeral: opts.ephemeral === true,
            graceMs: config.Allocator.ReapGraceS * 1000,
            logFile: join(stateDir, `watchdog-${agent.peer}.log`)
          },
          log.scope('watchdog')
        )
      manager = new InstanceManager(
        {
          runtime,
          catalog,
          log: log.scope('instances'),
          onCull: (app, reason) => {
            metrics.culls.inc({ app, reason })
          },
          cluster: clusterView(agent),
          fastPathUsed: id => fastPath?.mayBeUsed(id) === true
        },
        {
          maxInstances: config.Allocator.MaxInstances,
          memoryMB: config.Allocator.MemoryMB,
          drainTimeoutMs: config.Allocator.DrainTimeoutS * 1000,
          keepInstances: opts.keepInstances
        }
      )
      const m = manager
      // Before the manager starts: a drained allocator that restarts keeps no warm minimum and takes no allocation.
      const maintenanceFile = opts.ephemeral === true ? undefined : join(stateDir, `maintenance-${agent.peer}.json`)
      restoreMaintenance(maintenanceFile, manager, log.scope('drain'))
      const fp = (fastPath = new FastPathHost({
        peer: agent.peer,
        instances: () => m.instances.values(),
        get: id => m.instances.get(id),
        draining: () => m.draining
      }))
      instancesGauge(agent.metrics.registry, manager)
      // Announce at once when an instance becomes ready or goes away.
      manager.on('change', () => {
        fp.refresh()
        agent.membership.announceSoon(0)
      })
      // Label values come from the catalog only: a peer naming made-up apps must not add a
      // series per name (memory that grew with every request).
      const appLabel = (app: string): string => (catalog.get(app) !== undefined ? app : '?')
      const allocation = new AllocationServer(
        {
          node: agent.node,
          allocate: async (app, o) => await m.allocate(app, o),
          log: log.scope('alloc'),
          stats: {
            onResult: (app, result, s) => {
              metrics.allocations.inc({ app: appLabel(app), result })
              metrics.allocSeconds.observe({ app: appLabel(app), result }, s)
            }
          }
        },
        {
          ratePerSecond: config.Allocator.RateLimit.PerSecond,
          burst: config.Allocator.RateLimit.Burst
        }
      )
      // Draining: what is in flight finishes, anything new goes elsewhere (the proxy retries on DRAINING).
      const own = router<Instance>({
        draining: () => m.draining,
        serves: app => catalog.get(app) !== undefined,
        ready: app => m.readyOf(app),
        target: inst =>
          inst.rt === undefined
            ? undefined
            : {
                app: inst.app,
                instanceId: inst.id,
                host: inst.rt.host,
                port: inst.rt.port,
                protocol: inst.spec.protocol,
                begin: () => m.begin(inst)
              }
      })
      const registered = router(reg.source())
      const forward = new ForwardServer(
        {
          node: agent.node,
          log: log.scope('forward'),
          onResponse: (app, status) => {
            metrics.forwarded.inc({ app: appLabel(app), status: String(status) })
          },
          onUpgraded: (app, delta) => {
            metrics.upgraded.inc({ app: appLabel(app) }, delta)
          }
        },
        {
          // A registered instance when the frame names one, or when the app has only registered ones here.
          resolve: frame => {
            const app = frame.app
            const toRegistry =
              frame.instance !== undefined
                ? reg.byId(frame.instance) !== undefined
                : reg.ready(app).length > 0 && m.readyOf(app).length === 0
            return toRegistry || (catalog.get(app) === undefined && reg.serves(app)) ? registered(frame) : own(frame)
          }
        }
      )
      reg.on('removed', e => {
        forward.forget(e.host, e.port)
      })
      manager.on('removed', inst => {
        if (inst.rt !== undefined) forward.forget(inst.rt.host, inst.rt.port)
      })
      await reg.start()
      await manager.start()
      await allocation.start()
      await forward.start()
      agent.admin.route('/v1/instances', () => m.list())
      const drainer = new Drainer({
        manager,
        node: agent.node,
        membership: agent.membership,
        rtt: agent.rtt,
        log: log.scope('drain'),
        announce: () => {
          agent.membership.announceSoon(0)
        },
        stateFile: maintenanceFile
      })
      agent.admin.route('/v1/drain', () => ({ state: drainer.state }))
      agent.admin.mutation<DrainBody>({
        method: 'POST',
        path: '/v1/drain',
        schema: drainBodySchema,
        handle: async body => {
          try {
            return body.undo === true
              ? drainer.undo()
              : await drainer.drain({
                  deadlineMs: body.deadlineS !== undefined ? body.deadlineS * 1000 : DRAIN_DEADLINE_MS
                })
          } catch (err) {
            if (err instanceof DrainError) throw new AdminError('CONFLICT', err.message)
            throw err
          }
        }
      })
      adminPeer = new AdminPeerServer(
        {
          node: agent.node,
          log: log.scope('admin'),
          handle: async req => {
            try {
              return req.op === 'undo'
                ? drainer.undo()
                : await drainer.drain({
                    deadlineMs: req.deadlineS !== undefined ? req.deadlineS * 1000 : DRAIN_DEADLINE_MS
                  })
            } catch (err) {
              if (err instanceof DrainError)
                throw new AdminCallError('CONFLICT', `${agent.peer} refused: ${err.message}`)
              throw err
            }
          }
        },
        { operators: config.Admin.Operators ?? [] }
      )
      await adminPeer.start()
      registrationRoutes(agent.admin, reg, catalog)
      // The local fast path: same-host proxies (with this user's admin token) sync here.
      agent.admin.mutation<Report>({
        method: 'POST',
        path: FASTPATH_PATH,
        schema: reportSchema,
        maxBytes: 1024 * 1024,
        handle: body => fp.report(body)
      })
      fp.start()
      agent.membership.announceSoon(0)
      // Recorded before it says it is up: whoever waits for that line finds the record.
      agent.registerLocal()
      log.info(
        `catalog: ${catalog.names().join(', ') || '(empty)'}; runtime ${runtime.kind}; up to ${config.Allocator.MaxInstances} instances, ${config.Allocator.MemoryMB} MB`
      )
      return new AllocatorDaemon(
        agent,
        manager,
        allocation,
        forward,
        reg,
        catalog,
        log,
        adminPeer,
        { watchdog, pidFile, keepInstances: opts.keepInstances === true },
        fp
      )
    } catch (err) {
      fastPath?.stop()
      // Start-up failed after the runtime was up: stop what manager.start() launched
      // (MinInstances) and the runtime's event watch, as stop() would.
      await adminPeer?.stop()
      await manager?.stop()
      watchdog?.release(opts.keepInstances === true ? 'kept' : 'stopped')
      if (pidFile !== undefined) removePidFile(pidFile)
      await reg.stop()
      await agent.stop()
      throw err
    }
  }

  /** Graceful shutdown: DRAINING, leave, let in-flight requests finish, stop instances. */
  async stop(): Promise<void> {
    this.stopping ??= this.doStop()
    await this.stopping
  }

  private async doStop(): Promise<void> {
    const { agent, manager, allocation, forward, registry } = this
    // Refuses new work at once (DRAINING), then waits for what is in flight; meanwhile no
    // new allocations are taken and the leave goes out, so that proxies look elsewhere.
    const drained = manager.beforeStop()
    // Draining from now on: what same-host proxies may still send straight to the instances is held busy at once.
    this.fastPath.refresh()
    await this.adminPeer.stop()
    await registry.beforeStop()
    await allocation.beforeStop()
    await agent.beforeStop()
    await drained
    await forward.beforeStop()
    await forward.stop()
    await allocation.stop()
    await manager.stop()
    this.fastPath.stop()
    // Nothing left to remove, or (--keep-instances) left for the next start, removed only if none comes.
    this.lifeline.watchdog?.release(this.lifeline.keepInstances ? 'kept' : 'stopped')
    if (this.lifeline.pidFile !== undefined) removePidFile(this.lifeline.pidFile)
    await registry.stop()
    await agent.stop()
  }
}
