// The proxy daemon: an agent, the HTTP entrypoint with placement and forwarding, and in
// server mode a user-run instance that it health-checks, announces and serves.
import { Pool } from 'undici'
import { Agent, type DaemonOptions } from '../cluster/agent.js'
import type { Config } from '../config/schema.js'
import { statusJson, RecentErrors } from './status.js'
import { Requests, type TrafficPolicy } from './request.js'
import { ENTRYPOINT_DRAIN_MS, SWEEP_MS, UNLISTED_MAX_INSTANCES } from './constants.js'
import type { Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestAllocation } from '../allocation/protocol.js'
import { Catalog, appSpec, type AppSpec } from '../catalog/catalog.js'
import { ForwardClient } from '../forward/client.js'
import { instanceKey } from '../forward/protocol.js'
import { ForwardServer, instancePool } from '../forward/serve.js'
import { router } from '../forward/routing.js'
import { checkOnce } from '../catalog/health.js'
import { debugOn, type Logger } from '../util/log.js'
import { Balancer } from './balancer.js'
import { Placement, type Endpoint } from './placement.js'
import { Entrypoint } from './entrypoint.js'
import { proxyMetrics } from './metrics.js'

export interface ProxyOptions extends DaemonOptions {
  port: number
  bind: string
  /** Server mode: an instance of `app` run by the user at `address`. */
  app?: string
  address?: { host: string; port: number }
}

/** A user-run instance announced by a proxy in server mode. */
class LocalInstance implements Startable {
  healthy = false
  inFlight = 0
  private timer?: NodeJS.Timeout
  readonly id: string
  readonly pool: Pool

  constructor(
    readonly spec: AppSpec,
    readonly host: string,
    readonly port: number,
    peer: string,
    private readonly log: Logger,
    private readonly onChange: () => void
  ) {
    this.id = `local-${peer.slice(-6)}-${port}`
    this.pool = instancePool(host, port)
  }

  async start(): Promise<void> {
    await this.check()
    this.timer = setInterval(() => {
      void this.check()
    }, this.spec.health.intervalMs)
    this.timer.unref()
  }

  private async check(): Promise<void> {
    const ok = await checkOnce(this.spec, this.host, this.port, this.spec.health.timeoutMs)
    if (ok !== this.healthy) {
      this.healthy = ok
      this.log[ok ? 'info' : 'warn'](
        `local instance of ${this.spec.name} at ${this.host}:${this.port} is ${ok ? 'healthy' : 'not answering its health check'}`
      )
      this.onChange()
    }
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    await this.pool.close().catch(debugOn(this.log, 'close of the local instance pool'))
  }
}

export class ProxyDaemon {
  private stopping?: Promise<void>

  private constructor(
    readonly agent: Agent,
    readonly entrypoint: Entrypoint,
    readonly placement: Placement,
    readonly address: string,
    private readonly forward: ForwardClient,
    private readonly serving: ForwardServer | undefined,
    private readonly local: LocalInstance | undefined,
    private readonly sweeper: NodeJS.Timeout,
    private readonly apply: (config: Config) => void
  ) {}

  /** A new configuration (SIGHUP): the catalog, latency requirements, traffic policies and log level. */
  reload(config: Config): void {
    this.apply(config)
  }

  static async start(opts: ProxyOptions): Promise<ProxyDaemon> {
    const { config, log } = opts
    // What a reload may change (catalog, latency requirements, timeouts): read through `live`.
    let live = config
    const catalog = new Catalog(config)
    // Made once per app: read on every request. An app this proxy's catalog does not list
    // has the proxy's own timeouts and the default retry policy.
    const policies = new Map<AppSpec | undefined, TrafficPolicy>()
    const trafficPolicy = (spec: AppSpec | undefined): TrafficPolicy => {
      let p = policies.get(spec)
      if (p === undefined) {
        const t = (spec ?? appSpec('-', {}, live.Perf)).traffic
        const requestTimeoutS = t.requestTimeoutS ?? live.Proxy.RequestTimeoutS
        p = {
          requestTimeoutMs: requestTimeoutS * 1000,
          tryTimeoutMs: (t.tryTimeoutS ?? requestTimeoutS) * 1000,
          attempts: t.retry.attempts,
          retryOn: t.retry.on,
          budgetRatio: t.retry.budgetPercent / 100
        }
        policies.set(spec, p)
      }
      return p
    }
    let local: LocalInstance | undefined
    const agent = await Agent.start({
      ...opts,
      role: 'proxy',
      localState: () => ({
        catalog: [],
        instances:
          local?.healthy === true ? { [local.spec.name]: { ready: 1, inFlight: local.inFlight, ids: [local.id] } } : {},
        capacity: {}
      })
    })
    try {
      const metrics = proxyMetrics(agent.metrics.registry)

      if (opts.app !== undefined) {
        const spec = catalog.get(opts.app) ?? appSpec(opts.app, {}, config.Perf)
        const host = opts.address?.host ?? '127.0.0.1'
        const port = opts.address?.port ?? spec.port
        local = new LocalInstance(spec, host, port, agent.peer, log, () => {
          agent.membership.announceSoon(0)
        })
        await local.start()
      }
      const l = local
      const serving =
        l === undefined
          ? undefined
          : new ForwardServer(
              { node: agent.node, log: log.scope('forward') },
              {
                resolve: router<LocalInstance>({
                  draining: () => false,
                  serves: app => app === l.spec.name,
                  ready: () => (l.healthy ? [l] : []),
                  target: i => ({
                    app: i.spec.name,
                    instanceId: i.id,
                    host: i.host,
                    port: i.port,
                    begin: () => {
                      i.inFlight++
                      return () => {
                        i.inFlight--
                      }
                    }
                  })
                })
              }
            )
      await serving?.start()

      const balancer = new Balancer()
      const placement = new Placement(
        {
          self: agent.peer,
          startedAt: agent.startedAt,
          members: () => agent.membership.members(),
          member: peer => agent.membership.table.get(peer),
          rtt: {
            get: peer => agent.rtt.get(peer)?.ms,
            estimate: peer => agent.membership.estimate(peer),
            measureMany: async (peers, o) => {
              await agent.rtt.measureMany(
                peers.map(p => peerIdFromString(p)),
                { samples: 1, timeoutMs: o.timeoutMs }
              )
            }
          },
          allocate: async (peer, app, o) => await requestAllocation(agent.node, peerIdFromString(peer), app, o),
          balancer,
          log: log.scope('placement'),
          stats: {
            onAllocation: (app, result) => {
              metrics.allocations.inc({ app, result })
            },
            onColdStart: app => {
              metrics.coldStarts.inc({ app: placement.known(app) ? app : '?' })
            }
          }
        },
        {
          policy: app => {
            const spec = catalog.get(app) ?? appSpec(app, {}, live.Perf)
            return {
              softMs: spec.perf.softRttMs,
              hardMs: spec.perf.hardRttMs,
              targetConcurrency: spec.targetConcurrency,
              maxInstances: catalog.get(app) !== undefined ? spec.maxInstances : UNLISTED_MAX_INSTANCES
            }
          },
          inLocalCatalog: app => catalog.get(app) !== undefined,
          coldStartTimeoutMs: config.Proxy.ColdStartTimeoutS * 1000,
          local: (app): Endpoint | undefined =>
            l !== undefined && l.healthy && l.spec.name === app
              ? {
                  key: instanceKey(agent.peer, app, l.id),
                  peer: agent.peer,
                  app,
                  instance: l.id,
                  rttMs: 0,
                  local: true,
                  announcedLoad: l.inFlight
                }
              : undefined
        }
      )
      const forward = new ForwardClient(agent.node, { log: log.scope('forward') })
      // A frozen host keeps its connection open but never answers a stream open: without this, a
      // request waiting for a stream to it would wait the full connect timeout.
      agent.membership.table.on('change', (m, prev) => {
        if (m.status === 'failed' && prev !== 'failed') forward.abortOpens(m.announcement.peer)
      })
      const recentErrors = new RecentErrors()
      const requests = new Requests({
        placement,
        balancer,
        forward,
        recentErrors,
        heard: peer => {
          agent.membership.table.heard(peer, Date.now())
        },
        local: app => (l !== undefined && l.spec.name === app ? l : undefined),
        stats: {
          onResponse: (app, status, s) => {
            metrics.requestCount.inc({ app, status: String(status) })
            metrics.latency.observe({ app }, s)
          },
          onRetry: app => {
            metrics.retries.inc({ app })
          },
          onEjection: app => {
            metrics.ejections.inc({ app })
          },
          onUpgraded: (app, delta) => {
            metrics.upgraded.inc({ app }, delta)
          }
        },
        traffic: app => trafficPolicy(catalog.get(app))
      })
      const entrypoint = new Entrypoint(
        { agent, placement, requests, recentErrors, log: log.scope('proxy') },
        { host: opts.bind, port: opts.port, drainTimeoutMs: ENTRYPOINT_DRAIN_MS }
      )
      await entrypoint.start()
      const address = entrypoint.address as string
      agent.admin.route('/v1/status', () => statusJson(agent, placement, recentErrors.list))
      agent.registerLocal(address)
      log.info(`proxy listening on http://${address}/ — try: curl http://${address}/<app>/`)
      // Pools and balancing figures are kept per instance; instances come and go (idle culls,
      // scale-outs), so what is kept of those no member announces any more is dropped.
      const sweeper = setInterval(() => {
        const live = placement.liveKeys()
        const keep = (key: string): boolean => live.has(key) || key.startsWith(`${agent.peer}/`)
        balancer.sweep(keep)
        forward.sweep(keep)
      }, SWEEP_MS)
      sweeper.unref()
      const apply = (next: Config): void => {
        live = next
        catalog.update(next)
        policies.clear()
        log.setLevel(next.Log.Level)
      }
      return new ProxyDaemon(agent, entrypoint, placement, address, forward, serving, local, sweeper, apply)
    } catch (err) {
      await local?.stop()
      await agent.stop()
      throw err
    }
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.sweeper)
      await this.agent.beforeStop()
      await this.entrypoint.beforeStop()
      await this.serving?.beforeStop()
      await this.entrypoint.stop()
      await this.serving?.stop()
      await this.forward.stop()
      await this.local?.stop()
      await this.agent.stop()
    })()
    await this.stopping
  }
}
