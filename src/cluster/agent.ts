// A running physarum daemon: identity, libp2p node, RTT, membership and the admin
// API, composed once for every role. The allocator and proxy build on it.
import '../util/polyfill.js'
import { expandHome } from '../config/load.js'
import type { Role } from '../config/defaults.js'
import type { Config } from '../config/schema.js'
import { createNode, fullAddrs, type PhysarumNode } from './node.js'
import { ephemeralKey, loadOrCreateKey } from './identity.js'
import { resolvePsk } from '../config/psk.js'
import { RttService } from './rtt.js'
import { Membership, type LocalState } from './membership/membership.js'
import { Metrics } from './admin/metrics.js'
import { AdminServer } from './admin/server.js'
import { registerLocal, unregisterLocal } from './local-agents.js'
import { loadOrCreateToken, tokenFile } from './admin/token.js'
import { VERSION } from '../util/version.js'
import { debugOn, type Logger } from '../util/log.js'
import type { Member } from './membership/table.js'
import type { AppInstances } from './membership/announcement.js'
import { ScaleTable } from '../scale/table.js'
import { MAX_SCALE_RECORDS, scaleRequestSchema, type ScaleRequest } from '../scale/protocol.js'
import { appView, appsView } from './apps.js'
import { AdminError } from './admin/errors.js'
import { remoteAdminRoutes } from './admin/remote.js'
import { APP_NAME_PATTERN } from '../config/schema.js'
import { SCALE_SYNC_MS } from './constants.js'
import type { Coordinate } from './coordinate/index.js'

export interface AgentOptions {
  role: Role
  /** Complete, with the role's defaults (loadConfig): the agent fills in nothing. */
  config: Config
  log: Logger
  /** A throwaway identity instead of KeyFile. */
  ephemeral?: boolean
  /** Admin API address; false disables it; undefined → Admin.Listen (none: no admin API). */
  admin?: string | false
  /**
   * The admin address is the role's default (7701, 7702), not the user's: when another
   * daemon on the host has that port, a free one is taken (and recorded in local-agents).
   */
  adminIsRoleDefault?: boolean
  localState?: () => LocalState
  /** The config file that was read, for the start-up log. */
  configFile?: string
  /** Accept connections but never dial out (for tests behind a delay relay). */
  inboundOnly?: boolean
  /** Collect Node process metrics (off when several agents share a process). */
  processMetrics?: boolean
  /**
   * The admin token's file (admin/token.ts), created when missing; false: none, and no state-changing admin call is
   * taken. Default: beside KeyFile, for an agent with an admin API.
   */
  tokenFile?: string | false
  /** Where the cluster's scale records are kept across restarts (an allocator's state directory); none: memory. */
  scaleFile?: string
}

/** What every daemon (allocator, proxy) passes through to its agent. */
export type DaemonOptions = Pick<
  AgentOptions,
  | 'config'
  | 'log'
  | 'ephemeral'
  | 'admin'
  | 'adminIsRoleDefault'
  | 'configFile'
  | 'processMetrics'
  | 'inboundOnly'
  | 'tokenFile'
  | 'scaleFile'
>

/** One row of the member table as the admin API and `physarum members` show it. */
export interface MemberView {
  peer: string
  self: boolean
  status: string
  roles: string[]
  addrs: string[]
  version: string
  rttMs: number | null
  rttAgeMs: number | null
  catalog: string[]
  instances: Record<string, AppInstances>
  capacity: Record<string, number>
  lastSeen: string
  statusSince: string
  seq: number
  /** Its Vivaldi network coordinate (this node's own, or as last heard), null while unknown. */
  coordinate: Coordinate | null
}

export class Agent {
  /** Where its admin API listens (HOST:PORT), if it does. */
  get adminAddress(): string | undefined {
    return this.admin.address
  }
  readonly startedAt = Date.now()
  private stopped = false
  private scaleSync?: NodeJS.Timeout
  private localFile?: string

  private constructor(
    readonly node: PhysarumNode,
    readonly rtt: RttService,
    readonly membership: Membership,
    readonly metrics: Metrics,
    readonly admin: AdminServer,
    readonly log: Logger,
    readonly role: Role,
    /** The cluster's scale records (physarum scale), as this agent knows them. */
    readonly scale: ScaleTable,
    /** Where the admin token is, if this agent takes state-changing calls. */
    readonly tokenFile?: string
  ) {}

  static async start(opts: AgentOptions): Promise<Agent> {
    const { config, log, role } = opts
    const psk = resolvePsk(config)
    let privateKey
    // No KeyFile: a throwaway identity. An observer never takes a key file, whatever its config.
    if (opts.ephemeral === true || role === 'observer' || config.KeyFile === undefined) {
      privateKey = await ephemeralKey()
    } else {
      const file = expandHome(config.KeyFile)
      const loaded = await loadOrCreateKey(file)
      if (loaded.created) log.info(`created identity key ${file}`)
      privateKey = loaded.key
    }
    // After the key: a refused key file is the one error, with no token made beside it.
    // An observer (the CLI) never makes a token; an agent without an admin API needs none.
    const wantsToken = role !== 'observer' && opts.tokenFile !== false && (opts.admin ?? config.Admin.Listen) !== false
    const tokenPath = wantsToken ? ((opts.tokenFile as string | undefined) ?? tokenFile(config.KeyFile)) : undefined
    let token: string | undefined
    if (tokenPath !== undefined) {
      const t = loadOrCreateToken(tokenPath)
      if (t.created) log.info(`created admin token ${tokenPath}`)
      token = t.token
    }
    const node = await createNode({
      privateKey,
      listen: config.Listen,
      announce: config.Announce,
      inboundOnly: opts.inboundOnly,
      bootstraps: config.Bootstraps,
      psk: psk?.key
    })
    const scale = new ScaleTable({ self: node.peerId.toString(), file: opts.scaleFile })
    const metrics = new Metrics({ defaultMetrics: opts.processMetrics })
    const rtt = new RttService(
      { node, log: log.scope('rtt') },
      {
        probeTimeoutMs: config.Membership.ProbeTimeoutMs,
        onSample: ms => {
          metrics.rtt.observe(ms / 1000)
        }
      }
    )
    const membership = new Membership(
      {
        node,
        rtt,
        log: log.scope('members'),
        stats: {
          onAnnouncement: r => {
            metrics.announcements.inc({ result: r })
          },
          onSuspectNotice: r => {
            metrics.suspectNotices.inc({ result: r })
          },
          onDelta: r => {
            metrics.deltas.inc({ result: r })
          }
        }
      },
      {
        roles: [role],
        version: VERSION,
        bootstraps: config.Bootstraps,
        announceIntervalMs: config.Membership.AnnounceIntervalMs,
        probeIntervalMs: config.Membership.ProbeIntervalMs,
        probeTimeoutMs: config.Membership.ProbeTimeoutMs,
        suspectTimeoutMs: config.Membership.SuspectTimeoutMs,
        forgetAfterMs: config.Membership.ForgetAfterS * 1000,
        localState: () => ({
          ...(opts.localState?.() ?? { catalog: [], instances: {}, capacity: {} }),
          scale: scale.all()
        })
      }
    )
    metrics.watchMembers(membership.table)
    const adminListen = opts.admin ?? config.Admin.Listen
    const admin = new AdminServer(
      { registry: metrics.registry },
      {
        listen: adminListen === false ? undefined : adminListen,
        hint: 'choose another with --admin HOST:PORT',
        anyPortIfTaken: opts.admin === undefined && opts.adminIsRoleDefault === true,
        token
      }
    )
    const agent = new Agent(node, rtt, membership, metrics, admin, log, role, scale, tokenPath)
    try {
      await node.start()
      await rtt.start()
      await membership.start()
      admin.route('/v1/members', () => agent.view())
      admin.route('/v1/self', () => agent.view().find(m => m.self))
      agent.appRoutes()
      remoteAdminRoutes(admin, { node, membership })
      admin.route('/v1/health', () => ({
        status: 'ok',
        peer: node.peerId.toString(),
        role,
        version: VERSION,
        uptimeS: Math.round(process.uptime())
      }))
      await admin.start()
    } catch (err) {
      await agent.stop()
      throw err
    }
    if (role !== 'observer') {
      if (psk === undefined)
        log.warn(
          'no PSK configured: this node runs an OPEN network that anyone who reaches it can join; set Psk, PskFile or PHYSARUM_PSK (physarum config init makes one)'
        )
      else log.info(`private network, PSK fingerprint ${psk.fingerprint}`)
      log.info(`${role} ${node.peerId.toString()} started`, {
        version: VERSION,
        config: opts.configFile ?? '(built-in defaults)',
        ...(admin.address !== undefined ? { admin: admin.address } : {})
      })
      for (const a of fullAddrs(node)) log.info(`listening on ${a}`)
    }
    return agent
  }

  /** Every member's scale records merged into ours (last writer wins); a change of ours is announced at once. */
  syncScale(): void {
    for (const m of this.membership.members()) this.scale.merge(m.announcement.scale)
  }

  /** GET /v1/apps, /v1/apps/APP and the token-checked POST /v1/scale. */
  private appRoutes(): void {
    this.scale.on('change', (app, r) => {
      this.log.info(`scale of ${app}: min ${r.min}${r.max !== undefined ? `, max ${r.max}` : ''}`, { by: r.by })
      this.membership.announceSoon(0)
    })
    this.scaleSync = setInterval(() => {
      this.syncScale()
    }, SCALE_SYNC_MS)
    this.scaleSync.unref()
    this.admin.route('/v1/apps', () => {
      this.syncScale()
      return appsView(this.view(), this.scale.all())
    })
    this.admin.route('/v1/apps/*', (_req, url) => {
      this.syncScale()
      const app = decodeURIComponent(url.pathname.slice('/v1/apps/'.length))
      const v = appView(this.view(), this.scale.all(), app)
      if (v === undefined)
        throw new AdminError('NOT_FOUND', `unknown app ${app}: no member lists it, hosts it or has a scale for it`)
      return v
    })
    this.admin.mutation<ScaleRequest>({
      method: 'POST',
      path: '/v1/scale',
      schema: scaleRequestSchema,
      handle: body => {
        if (!new RegExp(APP_NAME_PATTERN).test(body.app))
          throw new AdminError('BAD_REQUEST', `${JSON.stringify(body.app)} is not a valid app name`)
        if (body.max !== undefined && body.max < body.min)
          throw new AdminError('BAD_REQUEST', `max ${body.max} is below min ${body.min}`)
        this.syncScale()
        if (this.scale.get(body.app) === undefined && Object.keys(this.scale.all()).length >= MAX_SCALE_RECORDS)
          throw new AdminError('CONFLICT', `the cluster has its maximum of ${MAX_SCALE_RECORDS} scale records`)
        return { app: body.app, ...this.scale.set(body.app, body.min, body.max) }
      }
    })
  }

  /** Records this daemon where `physarum members` on this host looks (local-agents.ts); once it serves. */
  registerLocal(http?: string): void {
    if (this.role === 'observer') return
    this.localFile = registerLocal({
      role: this.role,
      peer: this.peer,
      admin: this.admin.address,
      http,
      tokenFile: this.tokenFile
    })
  }

  get peer(): string {
    return this.node.peerId.toString()
  }

  /** Every member including this node, nearest first. */
  view(): MemberView[] {
    const now = Date.now()
    const self = this.membership.selfAnnouncement()
    const row = (m: Member | undefined, a = m?.announcement ?? self): MemberView => {
      const rtt = m === undefined ? undefined : this.rtt.get(a.peer)
      return {
        peer: a.peer,
        self: m === undefined,
        // An alive allocator under a planned drain shows that instead (physarum drain).
        status: (m?.status ?? 'alive') === 'alive' && a.drain !== undefined ? a.drain : (m?.status ?? 'alive'),
        roles: a.roles,
        addrs: a.addrs,
        version: a.version,
        rttMs: m === undefined ? 0 : rtt !== undefined ? Number(rtt.ms.toFixed(3)) : null,
        rttAgeMs: rtt !== undefined ? now - rtt.measuredAt : m === undefined ? 0 : null,
        catalog: a.catalog,
        instances: a.instances,
        capacity: a.capacity,
        lastSeen: new Date(m?.lastHeard ?? now).toISOString(),
        statusSince: new Date(m?.statusSince ?? now).toISOString(),
        seq: a.seq,
        coordinate: m === undefined ? this.membership.coordinate : (m.coordinate ?? null)
      }
    }
    const rows = [row(undefined), ...this.membership.members().map(m => row(m))]
    // Peer IDs in code-unit order: a daemon's first localeCompare loads ICU's collation data
    // (~2 MB of resident memory; the dependencies that sorted with it are patched too).
    return rows.sort(
      (x, y) =>
        Number(y.self) - Number(x.self) ||
        (x.rttMs ?? Infinity) - (y.rttMs ?? Infinity) ||
        (x.peer < y.peer ? -1 : x.peer > y.peer ? 1 : 0)
    )
  }

  /** The graceful part of a stop: announces the departure, so that others see 'left', not 'failed'. */
  async beforeStop(): Promise<void> {
    await this.membership.beforeStop().catch(debugOn(this.log, 'leave announcement'))
  }

  /** Stops everything this agent started (after beforeStop, or without it: others then see it fail). */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    unregisterLocal(this.localFile)
    clearInterval(this.scaleSync)
    await this.membership.stop().catch(debugOn(this.log, 'membership stop'))
    await this.admin.stop().catch(debugOn(this.log, 'admin API stop'))
    await this.rtt.stop().catch(debugOn(this.log, 'RTT service stop'))
    try {
      await this.node.stop()
    } catch (err) {
      debugOn(this.log, 'libp2p node stop')(err)
    }
  }
}
