// The allocator daemon: an agent (node, membership, admin) plus the catalog, a runtime,
// the instance manager, the allocation server and the forwarding server, with the
// shutdown order that loses nothing: refuse, announce leaving, drain, stop instances.
import { join } from 'node:path'
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

export interface AllocatorOptions extends DaemonOptions {
  keepInstances?: boolean
  /** Working directory of process-runtime instances (relative Commands resolve here). */
  cwd?: string
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
    private readonly log: Logger
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
    const agent = await Agent.start({
      ...opts,
      role: 'allocator',
      localState: () => manager?.localState() ?? { catalog: catalog.names(), instances: {}, capacity: {} }
    })
    try {
      const metrics = allocatorMetrics(agent.metrics.registry)
      // Beside the key file: an allocator with a persistent identity finds its processes
      // after a restart. An ephemeral one never could, so its state stays in /tmp.
      const stateDir =
        opts.ephemeral === true
          ? tmpdir()
          : config.KeyFile !== undefined
            ? join(expandHome(config.KeyFile), '..')
            : expandHome('~/.physarum')
      const runtime = await chooseRuntime(config, agent.peer, log, stateDir, opts)
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
                    protocol: inst.spec.protocol,
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
      agent.membership.announceSoon(0)
      // Recorded before it says it is up: whoever waits for that line finds the record.
      agent.registerLocal()
      log.info(
        `catalog: ${catalog.names().join(', ') || '(empty)'}; runtime ${runtime.kind}; up to ${config.Allocator.MaxInstances} instances, ${config.Allocator.MemoryMB} MB`
      )
      return new AllocatorDaemon(agent, manager, allocation, forward, catalog, log)
    } catch (err) {
      // Start-up failed after the runtime was up: stop what manager.start() launched
      // (MinInstances) and the runtime's event watch, as stop() would.
      await manager?.stop()
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
    await agent.stop()
  }
}
