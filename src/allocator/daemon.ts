// The allocator daemon: an agent (node, membership, admin) plus the catalog, a runtime,
// the instance manager, the allocation server and the forwarding server, with the
// shutdown order that loses nothing: refuse, announce leaving, drain, stop instances.
import { join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { Agent, type DaemonOptions } from '../cluster/agent.js'
import type { Config } from '../config/schema.js'
import { expandHome } from '../config/files.js'
import { Catalog } from '../catalog/catalog.js'
import { InstanceManager, type Instance } from './instances/manager.js'
import { router } from '../forward/routing.js'
import { AllocationServer } from '../allocation/server.js'
import { ForwardServer } from '../forward/serve.js'
import { DockerRuntime, dockerAvailable } from './runtime/docker.js'
import { ProcessRuntime } from './runtime/process.js'
import type { Runtime } from './runtime/runtime.js'
import type { Logger } from '../util/log.js'
import { allocatorMetrics, instancesGauge } from './metrics.js'
import { Watchdog, removePidFile, writePidFile } from './watchdog.js'
import { DrainError, Drainer } from './drain.js'
import { AdminError } from '../cluster/admin/server.js'
import { DRAIN_DEADLINE_MS } from './constants.js'

/** The body of POST /v1/drain: {} or {deadlineS} drains, {undo: true} ends the maintenance. */
function drainRequest(body: unknown): { undo: boolean; deadlineMs: number } {
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
    throw new AdminError(400, 'the body must be a JSON object')
  const b = (body ?? {}) as Record<string, unknown>
  for (const k of Object.keys(b))
    if (k !== 'undo' && k !== 'deadlineS') throw new AdminError(400, `unknown field ${JSON.stringify(k)}`)
  if (b.undo !== undefined && typeof b.undo !== 'boolean') throw new AdminError(400, 'undo must be true or false')
  const d = b.deadlineS
  if (d !== undefined && (typeof d !== 'number' || !Number.isFinite(d) || d < 0 || d > 86400))
    throw new AdminError(400, 'deadlineS must be a number of seconds from 0 to 86400')
  return { undo: b.undo === true, deadlineMs: d !== undefined ? d * 1000 : DRAIN_DEADLINE_MS }
}

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

export class AllocatorDaemon {
  private stopping?: Promise<void>

  private constructor(
    readonly agent: Agent,
    readonly manager: InstanceManager,
    readonly allocation: AllocationServer,
    readonly forward: ForwardServer,
    private readonly catalog: Catalog,
    private readonly log: Logger,
    private readonly lifeline: { watchdog?: Watchdog; pidFile?: string; keepInstances: boolean }
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
    this.agent.membership.announceSoon(0)
  }

  static async start(opts: AllocatorOptions): Promise<AllocatorDaemon> {
    const { config, log } = opts
    const catalog = new Catalog(config)
    let manager: InstanceManager | undefined
    let watchdog: Watchdog | undefined
    let pidFile: string | undefined
    const agent = await Agent.start({
      ...opts,
      role: 'allocator',
      localState: () => manager?.localState() ?? { catalog: catalog.names(), instances: {}, capacity: {} }
    })
    try {
      const metrics = allocatorMetrics(agent.metrics.registry)
      // Beside the key file: an allocator with a persistent identity finds its processes
      // after a restart. An ephemeral one never could, so its state stays in /tmp.
      const stateDir = resolve(
        opts.ephemeral === true
          ? tmpdir()
          : config.KeyFile !== undefined
            ? join(expandHome(config.KeyFile), '..')
            : expandHome('~/.physarum')
      )
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
          }
        },
        {
          maxInstances: config.Allocator.MaxInstances,
          memoryMB: config.Allocator.MemoryMB,
          drainTimeoutMs: config.Allocator.DrainTimeoutS * 1000,
          keepInstances: opts.keepInstances
        }
      )
      const m = manager
      instancesGauge(agent.metrics.registry, manager)
      // Announce at once when an instance becomes ready or goes away.
      manager.on('change', () => {
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
          // Draining: what is in flight finishes, anything new goes elsewhere (the proxy retries on DRAINING).
          resolve: router<Instance>({
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
                    begin: () => m.begin(inst)
                  }
          })
        }
      )
      manager.on('removed', inst => {
        if (inst.rt !== undefined) forward.forget(inst.rt.host, inst.rt.port)
      })
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
        }
      })
      agent.admin.route('/v1/drain', () => ({ state: drainer.state }))
      agent.admin.post('/v1/drain', async body => {
        const r = drainRequest(body)
        try {
          return r.undo ? drainer.undo() : await drainer.drain({ deadlineMs: r.deadlineMs })
        } catch (err) {
          if (err instanceof DrainError) throw new AdminError(409, err.message)
          throw err
        }
      })
      agent.membership.announceSoon(0)
      // Recorded before it says it is up: whoever waits for that line finds the record.
      agent.registerLocal()
      log.info(
        `catalog: ${catalog.names().join(', ') || '(empty)'}; runtime ${runtime.kind}; up to ${config.Allocator.MaxInstances} instances, ${config.Allocator.MemoryMB} MB`
      )
      return new AllocatorDaemon(agent, manager, allocation, forward, catalog, log, {
        watchdog,
        pidFile,
        keepInstances: opts.keepInstances === true
      })
    } catch (err) {
      // Start-up failed after the runtime was up: stop what manager.start() launched
      // (MinInstances) and the runtime's event watch, as stop() would.
      await manager?.stop()
      watchdog?.release(opts.keepInstances === true ? 'kept' : 'stopped')
      if (pidFile !== undefined) removePidFile(pidFile)
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
    const { agent, manager, allocation, forward } = this
    // Refuses new work at once (DRAINING), then waits for what is in flight; meanwhile no
    // new allocations are taken and the leave goes out, so that proxies look elsewhere.
    const drained = manager.beforeStop()
    await allocation.beforeStop()
    await agent.beforeStop()
    await drained
    await forward.beforeStop()
    await forward.stop()
    await allocation.stop()
    await manager.stop()
    // Nothing left to remove, or (--keep-instances) left for the next start, removed only if none comes.
    this.lifeline.watchdog?.release(this.lifeline.keepInstances ? 'kept' : 'stopped')
    if (this.lifeline.pidFile !== undefined) removePidFile(this.lifeline.pidFile)
    await agent.stop()
  }
}
