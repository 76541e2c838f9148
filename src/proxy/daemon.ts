// The proxy daemon: an agent, the HTTP entrypoint with placement and forwarding, and a
// registry of user-run instances that it health-checks, announces and serves (its own in
// server mode, and those registered with it).
import { Agent, type DaemonOptions } from '../cluster/agent.js'
import type { Config } from '../config/schema.js'
import { statusJson, RecentErrors } from './status.js'
import { Requests, type TrafficPolicy } from './request.js'
import { ENTRYPOINT_DRAIN_MS, PLACEMENT_MIN_SAMPLES, SWEEP_MS, UNLISTED_MAX_INSTANCES } from './constants.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestAllocation } from '../allocation/protocol.js'
import { Catalog, appSpec, type AppSpec } from '../catalog/catalog.js'
import { ForwardClient } from '../forward/client.js'
import { instanceKey } from '../forward/protocol.js'
import { ForwardServer } from '../forward/serve.js'
import { router } from '../forward/routing.js'
import { Registry, defaultCheck } from '../registry/registry.js'
import { registrationRoutes } from '../registry/routes.js'
import { Balancer } from './balancer.js'
import { Placement, type Endpoint } from './placement.js'
import { loadTls } from '../config/tls.js'
import { Entrypoint } from './entrypoint.js'
import { proxyMetrics } from './metrics.js'
import { FastPathClient } from '../fastpath/client.js'

export interface ProxyOptions extends DaemonOptions {
  port: number
  bind: string
  /** Server mode: an instance of `app` run by the user at `address`. */
  app?: string
  address?: { host: string; port: number }
}

export class ProxyDaemon {
  private stopping?: Promise<void>

  private constructor(
    readonly agent: Agent,
    readonly entrypoint: Entrypoint,
    readonly placement: Placement,
    readonly address: string,
    private readonly forward: ForwardClient,
    private readonly serving: ForwardServer,
    /** The instances this proxy hosts: its own server-mode app, and those registered with it. */
    readonly registry: Registry,
    private readonly sweeper: NodeJS.Timeout,
    private readonly apply: (config: Config) => void,
    /** The local fast path: same-host allocators' instances straight over loopback (../fastpath/client.ts). */
    readonly fastPath: FastPathClient
  ) {}

  /** A new configuration (SIGHUP): the catalog, latency requirements, traffic policies and log level. */
  reload(config: Config): void {
    this.apply(config)
  }

  static async start(opts: ProxyOptions): Promise<ProxyDaemon> {
    const { config, log } = opts
    // Before anything starts: an unusable certificate or key is one line, not a half-started daemon.
    const tls = loadTls(config.Proxy)
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
    // Made once the agent (its peer ID) is: what the agent announces reads it from here.
    const hosted: { registry?: Registry } = {}
    const agent = await Agent.start({
      ...opts,
      role: 'proxy',
      localState: () => ({ catalog: [], instances: hosted.registry?.instances() ?? {}, capacity: {} })
    })
    const reg = new Registry({ log: log.scope('registry') }, { peer: agent.peer })
    hosted.registry = reg
    try {
      const metrics = proxyMetrics(agent.metrics.registry)
      reg.on('change', () => {
        agent.membership.announceSoon(0)
      })
      await reg.start()
      // Server mode: the proxy registers its own user-run instance, as `physarum register` would, without a TTL.
      if (opts.app !== undefined) {
        const spec = catalog.get(opts.app) ?? appSpec(opts.app, {}, config.Perf)
        await reg.register({
          app: spec.name,
          host: opts.address?.host ?? '127.0.0.1',
          port: opts.address?.port ?? spec.port,
          check: defaultCheck(spec),
          protocol: spec.protocol,
          source: 'server-mode'
        })
      }
      // Every proxy serves forwarded requests for the instances registered with it.
      const serving = new ForwardServer(
        { node: agent.node, log: log.scope('forward') },
        { resolve: router(reg.source()) }
      )
      reg.on('removed', e => {
        serving.forget(e.host, e.port)
      })
      await serving.start()
      registrationRoutes(agent.admin, reg, catalog)

      const balancer = new Balancer()
      const placement = new Placement(
        {
          self: agent.peer,
          startedAt: agent.startedAt,
          members: () => agent.membership.members(),
          member: peer => agent.membership.table.get(peer),
          rtt: {
            // Known only from PLACEMENT_MIN_SAMPLES samples on: one failure detector's ping that waited behind a
            // busy event loop is no distance to start an instance elsewhere for (a spike past SoftReq did so).
            get: peer => {
              const e = agent.rtt.get(peer)
              return e !== undefined && e.samples >= PLACEMENT_MIN_SAMPLES ? e.ms : undefined
            },
            estimate: peer => agent.membership.estimate(peer),
            measureMany: async (peers, o) => {
              await agent.rtt.measureMany(
                peers.map(p => peerIdFromString(p)),
                { samples: PLACEMENT_MIN_SAMPLES, timeoutMs: o.timeoutMs }
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
          local: (app): Endpoint | undefined => {
            const e = reg.leastLoaded(app)
            return e === undefined
              ? undefined
              : {
                  key: instanceKey(agent.peer, app, e.id),
                  peer: agent.peer,
                  app,
                  instance: e.id,
                  rttMs: 0,
                  local: true,
                  announcedLoad: e.inFlight
                }
          }
        }
      )
      const forward = new ForwardClient(agent.node, { log: log.scope('forward') })
      // A frozen host keeps its connection open but never answers a stream open: without this, a
      // request waiting for a stream to it would wait the full connect timeout.
      agent.membership.table.on('change', (m, prev) => {
        if (m.status === 'failed' && prev !== 'failed') forward.abortOpens(m.announcement.peer)
      })
      const recentErrors = new RecentErrors()
      const fastPath = new FastPathClient(
        {
          self: agent.peer,
          log: log.scope('fastpath'),
          isMember: peer => agent.membership.table.get(peer)?.status === 'alive'
        },
        { enabled: config.Proxy.LocalFastPath }
      )
      fastPath.start()
      const requests = new Requests({
        placement,
        balancer,
        forward,
        recentErrors,
        heard: peer => {
          agent.membership.table.heard(peer, Date.now())
        },
        local: (app, instance) => {
          const e = reg.byId(instance)
          return e !== undefined && e.app === app ? e : undefined
        },
        fastPath,
        stats: {
          onForward: (app, path) => {
            metrics.requests.forward(app, path)
          },
          onResponse: (app, status, s) => {
            metrics.requests.response(app, status, s)
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
        {
          agent,
          placement,
          requests,
          recentErrors,
          log: log.scope('proxy'),
          protocol: app => catalog.get(app)?.protocol
        },
        { host: opts.bind, port: opts.port, drainTimeoutMs: ENTRYPOINT_DRAIN_MS, tls }
      )
      await entrypoint.start()
      const address = entrypoint.address as string
      agent.admin.route('/v1/status', () => statusJson(agent, placement, recentErrors.list))
      agent.registerLocal(address)
      const scheme = tls !== undefined ? 'https' : 'http'
      log.info(`proxy listening on ${scheme}://${address}/ — try: curl ${scheme}://${address}/<app>/`)
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
        fastPath.setEnabled(next.Proxy.LocalFastPath)
        policies.clear()
        log.setLevel(next.Log.Level)
        // The certificate files are read again (a renewed certificate): new connections get it, open ones keep theirs.
        try {
          const t = loadTls(next.Proxy)
          if (t !== undefined && entrypoint.encrypted) {
            entrypoint.setTls(t)
            log.info('SIGHUP: TLS certificate reloaded; new connections get it')
          } else if ((t !== undefined) !== entrypoint.encrypted)
            log.warn('SIGHUP: Proxy.Tls turned on or off takes effect at the next start')
        } catch (err) {
          log.error(`SIGHUP: TLS certificate not reloaded, the old one stays: ${(err as Error).message}`)
        }
      }
      return new ProxyDaemon(agent, entrypoint, placement, address, forward, serving, reg, sweeper, apply, fastPath)
    } catch (err) {
      await reg.stop()
      await agent.stop()
      throw err
    }
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.sweeper)
      await this.agent.beforeStop()
      await this.entrypoint.beforeStop()
      await this.serving.beforeStop()
      await this.registry.beforeStop()
      await this.entrypoint.stop()
      await this.serving.stop()
      await this.forward.stop()
      await this.fastPath.stop()
      await this.registry.stop()
      await this.agent.stop()
    })()
    await this.stopping
  }
}
