// The proxy's side of the local fast path (./protocol.ts): which allocators run on this host (this user's runtime
// directory: their peer IDs, loopback admin addresses and token files, ../cluster/local-agents.ts), what instances
// each lists in its answer to a sync, and a keep-alive pool to each of those instances. Placement still chooses the
// instance (from the member table, as for any other host); this only says whether the chosen one can be reached
// straight over loopback, and counts what is sent to it for the allocator's next sync.
import { Client, type Pool } from 'undici'
import { localAgents, runtimeDir, type LocalAgent } from '../cluster/local-agents.js'
import { readToken } from '../cluster/admin/token.js'
import { instancePool } from '../forward/serve.js'
import { hostPort, parseHostPort } from '../util/http.js'
import type { Logger } from '../util/log.js'
import { FASTPATH_PATH, isLoopback, validateAnswer, type ListedInstance, type Report } from './protocol.js'
import { ADMIN_KEEPALIVE_MS, MISS_SYNC_MS, RECORDS_MS, STALE_MS, SYNC_MS, SYNC_TIMEOUT_MS } from './constants.js'

/**
 * The connection a proxy syncs with one allocator's admin API over: kept alive between syncs (every SYNC_MS, well
 * within the admin API's keep-alive), each call bounded by SYNC_TIMEOUT_MS from the connect to the last byte.
 */
function adminClient(host: string, port: number): Client {
  return new Client(`http://${hostPort(host, port)}`, {
    connectTimeout: SYNC_TIMEOUT_MS,
    keepAliveTimeout: ADMIN_KEEPALIVE_MS,
    pipelining: 1
  })
}

/** A sync that timed out (the allocator is busy, or frozen): its token is still good. */
function timedOut(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
}

/** One instance of a same-host allocator, reachable over loopback. */
export interface FastTarget {
  pool: Pool
  host: string
  port: number
  protocol: ListedInstance['protocol']
  /** Requests sent to it now, and begun since the last sync. */
  inFlight: number
  begun: number
}

interface Host {
  record: LocalAgent
  /** One keep-alive connection to its admin API, for every sync (not a new one per call). */
  admin: Client
  token?: string
  /** The seq of the answer applied last (0: none yet), and when it came. */
  seq: number
  at: number
  draining: boolean
  /** When a sync was last begun. */
  triedAt: number
  listed: Map<string, ListedInstance>
  /** What was sent to each instance, by ID (kept after it leaves the list, until reported idle). */
  targets: Map<string, FastTarget>
  syncing: boolean
}

export class FastPathClient {
  private readonly hosts = new Map<string, Host>()
  private readonly pools = new Map<string, Pool>()
  private timer?: NodeJS.Timeout
  private recordsAt = 0
  private soon = false

  constructor(
    private readonly components: {
      self: string
      log: Logger
      /** Whether a peer is an alive member of this proxy's cluster (another cluster's allocator here is not ours). */
      isMember: (peer: string) => boolean
    },
    private init: { enabled: boolean; runtimeDir?: string }
  ) {}

  get enabled(): boolean {
    return this.init.enabled
  }

  /** Turns the fast path on or off (a config reload); off: every request goes over libp2p. */
  setEnabled(on: boolean): void {
    this.init = { ...this.init, enabled: on }
    if (!on) this.clear()
  }

  start(): void {
    this.timer = setInterval(() => {
      void this.syncAll()
    }, SYNC_MS)
    this.timer.unref()
    void this.syncAll()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.clear()
  }

  private clear(): void {
    for (const h of this.hosts.values()) void h.admin.close().catch(() => {})
    this.hosts.clear()
    for (const p of this.pools.values()) void p.close().catch(() => {})
    this.pools.clear()
  }

  /**
   * The instance `id` of `app` on `peer`, when `peer` is an allocator on this host whose last answer (fresh) lists
   * it; else undefined (the request goes over libp2p).
   */
  target(peer: string, app: string, id: string): FastTarget | undefined {
    if (!this.init.enabled) return undefined
    const h = this.hosts.get(peer)
    if (h === undefined) return undefined
    const li = h.listed.get(id)
    if (li === undefined || li.app !== app || h.draining || Date.now() - h.at > STALE_MS) {
      // A new instance (just allocated), not in the last answer yet: asked for at once (not once per request).
      if (li === undefined && Date.now() - h.triedAt >= MISS_SYNC_MS) this.syncSoon()
      return undefined
    }
    let t = h.targets.get(id)
    // A pool closed by a sweep (its instance left a list, and came back in a later one) is made anew.
    if (t === undefined || t.port !== li.port || t.host !== li.host || t.pool.closed) {
      const key = hostPort(li.host, li.port)
      let pool = this.pools.get(key)
      if (pool === undefined || pool.closed) {
        pool = instancePool(li.host, li.port)
        this.pools.set(key, pool)
      }
      t = { pool, host: li.host, port: li.port, protocol: li.protocol, inFlight: t?.inFlight ?? 0, begun: 0 }
      h.targets.set(id, t)
    }
    return t
  }

  /** A request to `t` begins; the returned function ends it. */
  begin(t: FastTarget): () => void {
    t.inFlight++
    t.begun++
    let ended = false
    return () => {
      if (ended) return
      ended = true
      t.inFlight--
    }
  }

  /** The instance did not take a connection (it died): not used again until an answer lists it anew. */
  forget(peer: string, id: string): void {
    this.hosts.get(peer)?.listed.delete(id)
  }

  private syncSoon(): void {
    if (this.soon) return
    this.soon = true
    setImmediate(() => {
      this.soon = false
      void this.syncAll()
    })
  }

  /** The allocators of this user on this host, other than this process's own agent, with a loopback admin API. */
  private readRecords(): void {
    this.recordsAt = Date.now()
    const seen = new Set<string>()
    for (const a of localAgents(this.init.runtimeDir ?? runtimeDir())) {
      if (a.role !== 'allocator' || a.peer === this.components.self || a.tokenFile === undefined) continue
      if (!this.components.isMember(a.peer)) continue
      const admin = a.admin !== undefined ? parseHostPort(a.admin) : undefined
      if (admin === undefined || !isLoopback(admin.host)) continue
      seen.add(a.peer)
      const h = this.hosts.get(a.peer)
      if (h !== undefined && h.record.pid === a.pid && h.record.admin === a.admin) continue
      if (h !== undefined) void h.admin.close().catch(() => {})
      this.hosts.set(a.peer, {
        record: a,
        admin: adminClient(admin.host, admin.port),
        seq: 0,
        at: 0,
        draining: false,
        triedAt: 0,
        listed: new Map(),
        targets: h?.targets ?? new Map<string, FastTarget>(),
        syncing: false
      })
    }
    for (const [peer, h] of this.hosts)
      if (!seen.has(peer)) {
        void h.admin.close().catch(() => {})
        this.hosts.delete(peer)
      }
    this.sweepPools()
  }

  private sweepPools(): void {
    const used = new Set<string>()
    for (const h of this.hosts.values()) for (const li of h.listed.values()) used.add(hostPort(li.host, li.port))
    for (const [key, pool] of this.pools)
      if (!used.has(key)) {
        this.pools.delete(key)
        void pool.close().catch(() => {})
      }
  }

  private async syncAll(): Promise<void> {
    if (!this.init.enabled) return
    if (Date.now() - this.recordsAt >= RECORDS_MS) this.readRecords()
    await Promise.all([...this.hosts.values()].map(async h => await this.sync(h)))
  }

  /** One sync with one allocator: this proxy's usage of its instances out, its list of instances in. */
  private async sync(h: Host): Promise<void> {
    if (h.syncing) return
    h.syncing = true
    h.triedAt = Date.now()
    const usage: Report['instances'] = {}
    const begun = new Map<FastTarget, number>()
    for (const [id, t] of h.targets) {
      usage[id] = { inFlight: t.inFlight, begun: t.begun }
      begun.set(t, t.begun)
      // Reported idle, and no longer listed: nothing more to say of it.
      if (t.inFlight === 0 && t.begun === 0 && !h.listed.has(id)) h.targets.delete(id)
    }
    const body: Report = { v: 1, proxy: this.components.self, ack: h.seq, instances: usage }
    try {
      h.token ??= readToken(h.record.tokenFile as string)
      const res = await h.admin.request({
        path: FASTPATH_PATH,
        method: 'POST',
        headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: SYNC_TIMEOUT_MS,
        bodyTimeout: SYNC_TIMEOUT_MS
      })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
      const answer: unknown = JSON.parse(text)
      if (!validateAnswer(answer)) throw new Error('malformed answer')
      // A record whose port another daemon now has: not the allocator it names.
      if (answer.peer !== h.record.peer) throw new Error(`answered by ${answer.peer}, not ${h.record.peer}`)
      for (const [t, n] of begun) t.begun -= n
      h.listed = new Map(answer.instances.filter(i => isLoopback(i.host)).map(i => [i.id, i]))
      h.seq = answer.seq
      h.draining = answer.draining
      h.at = Date.now()
      this.sweepPools()
    } catch (err) {
      // Until it answers again (and STALE_MS after its last answer), its instances are reached over libp2p.
      this.components.log.debug(`fast path: sync with ${h.record.peer} failed: ${(err as Error).message}`)
      if (!timedOut(err)) h.token = undefined
    } finally {
      h.syncing = false
    }
  }
}
