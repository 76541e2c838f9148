// Gossip membership: announces this node's full state on /physarum/members/1 (at start,
// on request, rarely after changes, and as a leave on shutdown) and its changes as small
// versioned deltas on /physarum/delta/1 (delta.ts), keeps the member table from
// everyone's announcements and deltas (a version gap: the member is asked for its full
// state), and leaves liveness to the SWIM failure detector
// (swim.ts over swim-transport.ts): one member probed per period, not every member by
// every member. A closed connection whose redial is refused is a suspicion at once (a
// killed process). The probes' RTTs feed the rtt cache and this node's Vivaldi
// coordinate. A node that is itself slow stretches its own timeouts (health.ts, Lifeguard).
import type { ScaleRecord } from '../../scale/protocol.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { Startable, PeerId } from '@libp2p/interface'
import {
  DELTA_TOPIC,
  MAX_ANNOUNCEMENT_BYTES,
  MEMBERS_TOPIC,
  SUSPECT_TOPIC,
  decodeDelta,
  decodeSuspect,
  decodeAnnouncement,
  encodeAnnouncement,
  encodeDelta,
  type Announcement,
  type AppInstances,
  type Delta,
  type SuspectNotice
} from './announcement.js'
import { DeltaSender, type State } from './delta.js'
import { MemberTable, type Member, type MemberStatus } from './table.js'
import { LocalHealth } from './health.js'
import { Swim } from './swim.js'
import {
  COORDINATE_MAX_LAG_MS,
  DELTA_CHECK_MS,
  LOAD_MEMBERS_PER_INTERVAL,
  MAX_STATES_PER_FRAME,
  MAX_UNKNOWN_ASKS,
  STATE_REQUEST_MS,
  UNKNOWN_STATE_AT_ONCE_MEMBERS,
  UNKNOWN_STATE_WAIT_MS
} from './constants.js'
import { SwimTransport } from './swim-transport.js'
import { CoordinateClient, CoordinateError, type Coordinate } from '../coordinate/index.js'
import type { PhysarumNode } from '../node.js'
import type { RttService } from '../rtt.js'
import { debugOn, type Logger } from '../../util/log.js'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  BOOTSTRAP_DIAL_TIMEOUT_MS,
  LEAVE_FLUSH_MS,
  REFUTE_MS,
  REJOIN_INTERVAL_MS,
  SLOW_LOG_INTERVAL_MS
} from '../constants.js'

export interface LocalState {
  catalog: string[]
  instances: Record<string, AppInstances>
  capacity: Record<string, number>
  /** An allocator under a planned drain (physarum drain): moving its instances away, or done and in maintenance. */
  drain?: 'draining' | 'maintenance'
  /** The cluster's scale records as this node knows them (scale/table.ts). */
  scale?: Record<string, ScaleRecord>
}

export interface MembershipInit {
  roles: string[]
  version: string
  bootstraps: string[]
  announceIntervalMs: number
  probeIntervalMs: number
  probeTimeoutMs: number
  suspectTimeoutMs: number
  forgetAfterMs: number
  /** What this node has to say about itself (catalog, instances, capacity). */
  localState?: () => LocalState
}

export interface MembershipStats {
  onAnnouncement?: (result: 'accepted' | 'stale' | 'malformed' | 'oversized' | 'spoofed') => void
  /** A delta: applied, stale (a duplicate or older), a gap (full state asked for), or refused. */
  onDelta?: (result: 'accepted' | 'stale' | 'gap' | 'malformed' | 'oversized' | 'spoofed') => void
  onSuspectNotice?: (result: 'accepted' | 'malformed' | 'spoofed') => void
  onSwimMalformed?: () => void
}

/** Members per step of the periodic full announcement's interval: its total rate in the cluster stays flat in N. */
const ANNOUNCE_MEMBERS_PER_INTERVAL = 10

/**
 * A member the detector learns of is asked for its announcement after half to all of this (ms), unless gossipsub or
 * a 'states' frame brought it by then: see the change handler.
 */
const STATE_ASK_JITTER_MS = 2000

/** Members without an announcement are asked for it again this often (ms), at most STATE_RETRY_BATCH at a time. */
const STATE_RETRY_MS = 5000
const STATE_RETRY_BATCH = 16

/**
 * A newcomer re-announces itself this long after start (ms): its first announcement goes out before it has a gossipsub
 * peer; its bootstrap's connection and subscriptions are there within a few hundred ms.
 */
const JOIN_ANNOUNCE_MS = [250, 1000, 3000]

/** For this long after its start (ms), a node's periodic full announcement goes whether or not it changed. */
const JOIN_FULL_MS = 60000

export class Membership implements Startable {
  readonly table = new MemberTable()
  /** The version peers hold of this node's state, and the next delta from it; made at start. */
  private deltas?: DeltaSender
  /** The version the last full announcement carried: the periodic one goes only when there is a newer. */
  private lastFullSeq = 0
  /** A full announcement of this node reached a peer (or is on its way to the first that subscribed). */
  private heardOf = false
  private startedAt = 0
  /** When each member was last asked for its full state (a version gap), for STATE_REQUEST_MS. */
  private readonly askedAt = new Map<string, number>()
  /** Members without an announcement whose full state is to be asked for after a wait (askStateOfUnknown). */
  private readonly unknownAsks = new Map<string, NodeJS.Timeout>()
  private timers: NodeJS.Timeout[] = []
  private announceTimer?: NodeJS.Timeout
  private refuteTimer?: NodeJS.Timeout
  private started = false
  private leaving = false
  private dialing = new Set<string>()
  private readonly selfPeer: string
  private readonly log: Logger
  /** The failure detector: the member table's statuses follow its verdicts. */
  readonly swim: Swim
  readonly transport: SwimTransport
  /** This node's Vivaldi coordinate, moved by every answered probe. */
  readonly coordinates = new CoordinateClient()
  private periodicTimer?: NodeJS.Timeout
  private lastStateRetry = 0
  private rejoining = false
  /** What the validator decoded, handed to the message handler (same message object). */
  private readonly decoded = new WeakMap<Message, Announcement | SuspectNotice | Delta>()
  /** Parsed peer IDs of members: the probe loop needs them ten times a second. */
  private readonly peerIds = new Map<string, PeerId>()
  /** This node's own health: its failure-detector timeouts are multiplied by `health.multiplier`. */
  readonly health: LocalHealth
  private readonly tickMs: number
  private lastTick = 0
  private slowSince?: number
  private slowLevel: 'info' | 'debug' = 'info'
  private slowLoggedAt = -Infinity
  private nextRefuteAt = 0

  constructor(
    private readonly components: { node: PhysarumNode; rtt: RttService; log: Logger; stats?: MembershipStats },
    private readonly init: MembershipInit
  ) {
    this.selfPeer = components.node.peerId.toString()
    this.log = components.log
    this.tickMs = Math.min(100, init.probeIntervalMs)
    // A point of score per fifth of a probe timeout of lag (100 ms by default): a node whose
    // loop is 300 ms late gives probes 4× the time, by when even its own answers get through.
    this.health = new LocalHealth({ lagUnitMs: Math.max(20, init.probeTimeoutMs / 5) })
    this.table.on('change', (m, prev) => {
      if (prev !== m.status) {
        const level = m.status === 'failed' ? 'warn' : 'info'
        this.log[level](`member ${shortPeer(m.announcement.peer)} is ${m.status}`, {
          peer: m.announcement.peer,
          roles: m.announcement.roles.join(','),
          was: prev
        })
      }
      // An observer (a one-off `physarum members`) that left is of no further interest.
      if (m.status === 'left' && m.announcement.roles.every(r => r === 'observer'))
        this.table.forget(m.announcement.peer)
    })
    this.transport = new SwimTransport(
      { node: components.node, log: components.log },
      {
        onMessage: (from, msg) => {
          if (msg.t === 'state') this.onState(from, msg.announcement, msg.reply)
          else if (msg.t === 'states') this.onStates(from, msg.announcements)
          else this.swim.receive(from, msg)
        },
        addrsOf: peer => this.addrsOfPeer(peer),
        peerIdOf: peer => this.peerId(peer),
        onMalformed: () => components.stats?.onSwimMalformed?.()
      }
    )
    const timer = (fn: () => void, ms: number): NodeJS.Timeout => {
      const t = setTimeout(fn, ms)
      t.unref()
      return t
    }
    this.swim = new Swim(
      {
        self: this.selfPeer,
        now: () => performance.now(),
        setTimer: timer,
        clearTimer: t => {
          clearTimeout(t as NodeJS.Timeout)
        },
        send: (to, msg) => {
          return this.transport.send(to, msg)
        },
        random: Math.random,
        addrs: () => components.node.getMultiaddrs().map(m => m.toString()),
        coordinate: () => wireCoordinate(this.coordinates.coordinate),
        externalHealth: () => this.health.score,
        version: peer => (peer === this.selfPeer ? this.deltas?.sent.seq : this.table.get(peer)?.announcement.seq)
      },
      {
        probeIntervalMs: init.probeIntervalMs,
        probeTimeoutMs: init.probeTimeoutMs,
        // The least wait (three confirmations) is two thirds of SuspectTimeoutMs, 1 s by default: a suspect needs a
        // few gossip rounds to hear of it and as many for its refutation to come back (0.5 s failed healthy members of
        // a loaded 8-process cluster); one nobody confirms waits 6× that.
        suspicionMinMs: (init.suspectTimeoutMs * 2) / 3
      },
      // Wall-clock based: a restarted process outranks whatever its previous life said.
      { incarnation: Date.now() }
    )
    this.swim.on('change', (m, prev) => {
      this.table.setState(m.peer, m.state as MemberStatus, Date.now())
      // A member the detector just learnt of, whose announcement has not come: ask it for it, after a random pause
      // (it may be asking us at the same moment, or its own announcement be on its way).
      if (prev === undefined && m.state === 'alive' && this.table.get(m.peer) === undefined) {
        const t = setTimeout(
          () => {
            if (this.started && !this.leaving && this.table.get(m.peer) === undefined) this.sendState(m.peer, true)
          },
          STATE_ASK_JITTER_MS * (0.5 + Math.random() / 2)
        )
        t.unref()
      }
    })
    this.swim.on('rtt', (peer, ms, coord) => {
      components.rtt.observe(peer, ms)
      // A round trip timed while this node's own event loop ran late measures the loop, not the network: the
      // coordinate skips it (COORDINATE_MAX_LAG_MS).
      if (coord === undefined || this.health.lag > COORDINATE_MAX_LAG_MS) return
      try {
        this.coordinates.update(peer, coord, ms)
      } catch (err) {
        if (!(err instanceof CoordinateError)) throw err
        this.log.debug('coordinate sample refused', { peer, error: err.message })
      }
    })
    this.swim.on('coordinate', (peer, coord) => {
      this.table.setCoordinate(peer, coord)
    })
    this.swim.on('joined', peer => {
      this.sendStates(peer)
    })
    // A push-pull says someone holds a newer version of a member than we do: we missed a delta; catch up by asking.
    // One we hold nothing of (its announcement and our asks were lost): ask too.
    this.swim.on('version', (peer, ver) => {
      const m = this.table.get(peer)
      if (m === undefined) {
        if (isLive(this.swim.get(peer)?.state)) this.askStateOfUnknown(peer)
      } else if (m.announcement.seq < ver) this.askState(peer)
    })
    this.swim.on('refute', () => {
      this.health.refuted(Date.now())
    })
    this.table.on('forget', peer => {
      components.rtt.forget(peer)
      this.swim.forget(peer)
      this.transport.close(peer)
      this.coordinates.forget(peer)
      this.peerIds.delete(peer)
    })
  }

  /** Sends this node's announcement to one member, straight (reply: it should answer with its own). */
  private sendState(peer: string, reply: boolean): void {
    this.transport.send(peer, { v: 1, t: 'state', reply, announcement: this.wireAnnouncement() })
  }

  /** Asks a member for its full state (a version gap), at most once per STATE_REQUEST_MS. */
  private askState(peer: string): void {
    if (!this.started || this.leaving) return
    const now = Date.now()
    if (now - (this.askedAt.get(peer) ?? -Infinity) < STATE_REQUEST_MS) return
    if (this.askedAt.size > 4096) this.askedAt.clear()
    this.askedAt.set(peer, now)
    this.sendState(peer, true)
  }

  /**
   * Asks a member this node holds no announcement of for its full state: at once over an open stream or in a small
   * cluster, else after a random wait (UNKNOWN_STATE_WAIT_MS) and only if it is still unknown then, so that a newcomer
   * is not dialled by every member of a large cluster at once.
   */
  private askStateOfUnknown(peer: string): void {
    if (this.transport.connected(peer) || this.table.size < UNKNOWN_STATE_AT_ONCE_MEMBERS) {
      this.askState(peer)
      return
    }
    if (this.unknownAsks.has(peer) || this.unknownAsks.size >= MAX_UNKNOWN_ASKS) return
    const t = setTimeout(() => {
      this.unknownAsks.delete(peer)
      // Still without an announcement, and still live (not failed, left or forgotten meanwhile: no dial to the gone).
      if (this.table.get(peer) === undefined && isLive(this.swim.get(peer)?.state)) this.askState(peer)
    }, Math.random() * UNKNOWN_STATE_WAIT_MS)
    t.unref()
    this.unknownAsks.set(peer, t)
  }

  /** Every announcement this node holds, its own first, to a newcomer that joined through it. */
  private sendStates(peer: string): void {
    const all = [this.wireAnnouncement(), ...this.table.list().map(m => m.announcement)].filter(
      a => a.peer !== peer && a.leaving !== true
    )
    for (let i = 0; i < all.length; i += MAX_STATES_PER_FRAME)
      this.transport.send(peer, { v: 1, t: 'states', announcements: all.slice(i, i + MAX_STATES_PER_FRAME) })
  }

  private onStates(from: string, list: Announcement[]): void {
    if (!this.started) return
    const now = Date.now()
    for (const raw of list) {
      if (raw.peer === this.selfPeer) continue
      const a = filled(raw)
      if (a.peer === from) this.accept(a)
      else if (this.table.applyRelayed(a, now)) this.afterNew(a, 'new')
    }
  }

  /** A member's own announcement over its SWIM stream: the stream proves the sender, as a signature would. */
  private onState(from: string, raw: Announcement, reply: boolean): void {
    if (!this.started) return
    if (raw.peer !== from) {
      this.components.stats?.onAnnouncement?.('spoofed')
      return
    }
    this.accept(filled(raw))
    if (reply && !this.leaving) this.sendState(from, false)
  }

  /** This node's Vivaldi coordinate. */
  get coordinate(): Coordinate {
    return this.coordinates.coordinate
  }

  /** Estimated RTT (ms) to a member from its coordinate, without probing it; undefined when it has none yet. */
  estimate(peer: string): number | undefined {
    const c = this.table.get(peer)?.coordinate ?? this.swim.get(peer)?.coord
    return c === undefined ? undefined : this.coordinates.estimateTo(c)
  }

  get peer(): string {
    return this.selfPeer
  }

  private peerId(peer: string): PeerId {
    let id = this.peerIds.get(peer)
    if (id === undefined) {
      id = peerIdFromString(peer)
      this.peerIds.set(peer, id)
    }
    return id
  }

  async start(): Promise<void> {
    const { node } = this.components
    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(MEMBERS_TOPIC, (_from: PeerId, msg: Message) => this.validate(msg))
    pubsub.topicValidators.set(SUSPECT_TOPIC, (_from: PeerId, msg: Message) => this.validateSuspect(msg))
    pubsub.topicValidators.set(DELTA_TOPIC, (_from: PeerId, msg: Message) => this.validateDelta(msg))
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscription)
    node.addEventListener('peer:disconnect', this.onDisconnect)
    pubsub.subscribe(MEMBERS_TOPIC)
    pubsub.subscribe(SUSPECT_TOPIC)
    pubsub.subscribe(DELTA_TOPIC)
    await this.transport.start()
    // The first version: wall-clock based, so that a restarted process outranks whatever its previous life said.
    this.deltas = new DeltaSender({ ...this.selfAnnouncement(), seq: Date.now() })
    this.started = true
    this.startedAt = performance.now()
    this.swim.start()
    for (const peer of this.bootstrapPeers()) this.swim.join(peer)
    this.announce()
    // A newcomer's full state again (same version): its first went out before it had a gossipsub peer.
    for (const ms of JOIN_ANNOUNCE_MS) {
      const t = setTimeout(() => {
        this.flushDelta()
        this.announce()
      }, ms)
      t.unref()
      this.timers.push(t)
    }
    this.schedulePeriodic()
    this.lastTick = performance.now()
    this.timers.push(
      setInterval(() => {
        this.tick()
      }, this.tickMs)
    )
    this.timers.push(
      setInterval(() => {
        this.rejoin()
      }, REJOIN_INTERVAL_MS)
    )
    this.timers.push(
      setInterval(() => {
        this.flushDelta()
      }, DELTA_CHECK_MS)
    )
    for (const t of this.timers) t.unref()
  }

  /** The graceful part of a stop: no more probes or announcements, then a leave announcement, given time to go out. */
  async beforeStop(): Promise<void> {
    if (!this.started || this.leaving) return
    this.stopTimers()
    this.leaving = true
    this.swim.leave()
    // The leave is a new version, in full: every change so far and leaving.
    this.bumpFull()
    await this.publish()
    // Give gossipsub a moment to flush the leave to every mesh peer before the streams close.
    await sleep(LEAVE_FLUSH_MS)
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    if (this.announceTimer !== undefined) clearTimeout(this.announceTimer)
    if (this.refuteTimer !== undefined) clearTimeout(this.refuteTimer)
    if (this.periodicTimer !== undefined) clearTimeout(this.periodicTimer)
    for (const t of this.unknownAsks.values()) clearTimeout(t)
    this.unknownAsks.clear()
  }

  /**
   * The periodic full announcement, only when the state changed since the last one (at rest: never): changes go as
   * deltas at once, and a member that missed one catches up by asking (a version gap, or a push-pull's newer version).
   * It keeps peers that predate deltas current, rarely: every AnnounceIntervalMs up to 10 members, one interval more
   * per 10 members, so that a member receives about one per interval from the whole cluster, whatever its size.
   */
  private schedulePeriodic(): void {
    // A newcomer's (JOIN_FULL_MS) at the plain interval, so that a few go out in its first minute.
    const joining = this.startedAt === 0 || performance.now() - this.startedAt < JOIN_FULL_MS
    const scale = joining ? 1 : Math.max(1, this.table.size / ANNOUNCE_MEMBERS_PER_INTERVAL)
    // ±10 % jitter, so that members that started together do not announce together.
    const ms = this.init.announceIntervalMs * scale * (0.9 + 0.2 * Math.random())
    this.periodicTimer = setTimeout(() => {
      // A newcomer goes on announcing itself for a while: members whose copy and asks were lost in the rush of a
      // cluster's joins (a loaded host) hear of it without waiting for a push-pull.
      const joining = performance.now() - this.startedAt < JOIN_FULL_MS
      if (joining || (this.deltas?.sent.seq ?? 0) > this.lastFullSeq) this.announce()
      this.schedulePeriodic()
    }, ms)
    this.periodicTimer.unref()
  }

  /** Peer IDs of the bootstraps (their multiaddrs end in /p2p/ID). */
  private bootstrapPeers(): string[] {
    const out: string[] = []
    for (const b of this.init.bootstraps) {
      try {
        const id = peerOfAddr(multiaddr(b))
        if (id !== undefined && id !== this.selfPeer) out.push(id)
      } catch {}
    }
    return out
  }

  /** Where a member can be dialled: its announcement's addresses, the detector's, or a bootstrap's. */
  private addrsOfPeer(peer: string): Multiaddr[] {
    const a = this.table.get(peer)?.announcement
    if (a !== undefined) return this.addrsOf(a)
    const sw = this.swim.get(peer)
    if (sw !== undefined && sw.addrs.length > 0)
      return this.addrsOf({ peer, addrs: sw.addrs } as Pick<Announcement, 'peer' | 'addrs'>)
    const out: Multiaddr[] = []
    for (const b of this.init.bootstraps) {
      try {
        const ma = multiaddr(b)
        if (peerOfAddr(ma) === peer) out.push(ma)
      } catch {}
    }
    return out
  }

  /** Stops; without beforeStop first, others see this node fail rather than leave. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.stopTimers()
    this.swim.stop()
    await this.transport.stop()
    const { node } = this.components
    const pubsub = node.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    node.removeEventListener('peer:disconnect', this.onDisconnect)
    pubsub.topicValidators.delete(MEMBERS_TOPIC)
    pubsub.topicValidators.delete(SUSPECT_TOPIC)
    pubsub.topicValidators.delete(DELTA_TOPIC)
    try {
      pubsub.unsubscribe(MEMBERS_TOPIC)
      pubsub.unsubscribe(SUSPECT_TOPIC)
      pubsub.unsubscribe(DELTA_TOPIC)
    } catch (err) {
      debugOn(this.log, 'unsubscribe on stop')(err)
    }
    this.started = false
  }

  /** Announces this node's changes soon, as a delta (coalescing bursts of changes into one message). */
  announceSoon(delayMs = 5): void {
    if (!this.started || this.announceTimer !== undefined) return
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined
      this.flushDelta()
    }, delayMs)
  }

  /** The full announcement of the version peers hold. */
  private announce(): void {
    if (!this.started) return
    void this.publish()
  }

  /** Load figures' intervals stretch with the cluster (delta.ts): its total of load deltas stays flat in N. */
  private loadScale(): number {
    return Math.max(1, this.table.size / LOAD_MEMBERS_PER_INTERVAL)
  }

  /** What changed since the version peers hold, as a delta on DELTA_TOPIC (or nothing, when nothing is due). */
  private flushDelta(): void {
    if (!this.started || this.leaving || this.deltas === undefined) return
    const d = this.deltas.next(this.localStateNow(), Date.now(), { scale: this.loadScale() })
    if (d === undefined) return
    const bytes = encodeDelta(d)
    // A delta that big (thousands of instances changed at once) goes as the full announcement it amounts to.
    if (bytes.byteLength > MAX_ANNOUNCEMENT_BYTES) {
      this.announce()
      return
    }
    this.components.node.services.pubsub.publish(DELTA_TOPIC, bytes).catch((err: unknown) => {
      this.log.debug('delta not published', { error: (err as Error).message })
    })
  }

  /** Every change now, and one version more, for a full announcement that must be news to all (leave, refutation). */
  private bumpFull(): void {
    if (this.deltas === undefined) return
    this.deltas.next(this.localStateNow(), Date.now(), { force: true })
    const sent = this.deltas.sent
    this.deltas.reset({ ...sent, seq: sent.seq + 1 })
  }

  private localStateNow(): State {
    const a = this.selfAnnouncement()
    return {
      roles: a.roles,
      addrs: a.addrs,
      version: a.version,
      catalog: a.catalog,
      instances: a.instances,
      capacity: a.capacity,
      ...(a.drain !== undefined ? { drain: a.drain } : {}),
      ...(a.scale !== undefined ? { scale: a.scale } : {})
    }
  }

  /** This node's announcement as its peers hold it (the last version), for a full announcement or a 'state' frame. */
  private wireAnnouncement(): Announcement {
    const sent = this.deltas?.sent ?? this.selfAnnouncement()
    return { ...sent, ts: Date.now(), ...(this.leaving ? { leaving: true } : {}) }
  }

  /** This node's own announcement with its state as it is now (the local view: /v1/self, members). */
  selfAnnouncement(): Announcement {
    const state = this.init.localState?.() ?? { catalog: [], instances: {}, capacity: {} }
    return {
      v: 1,
      peer: this.selfPeer,
      roles: this.init.roles,
      addrs: this.components.node.getMultiaddrs().map(m => m.toString()),
      version: this.init.version,
      catalog: state.catalog,
      instances: state.instances,
      capacity: state.capacity,
      ...(state.drain !== undefined ? { drain: state.drain } : {}),
      seq: this.deltas?.sent.seq ?? 0,
      ts: Date.now(),
      ...(state.scale !== undefined && Object.keys(state.scale).length > 0 ? { scale: state.scale } : {}),
      ...(this.leaving ? { leaving: true } : {})
    }
  }

  private async publish(): Promise<void> {
    const a = this.wireAnnouncement()
    this.lastFullSeq = a.seq
    try {
      const r = await this.components.node.services.pubsub.publish(MEMBERS_TOPIC, encodeAnnouncement(a))
      if (r.recipients.length > 0) this.heardOf = true
    } catch (err) {
      this.log.debug('announcement not published', { error: (err as Error).message })
    }
  }

  private validate(msg: Message): TopicValidatorResult {
    const res = decodeAnnouncement(msg.data)
    if (!res.ok) {
      this.components.stats?.onAnnouncement?.(res.reason)
      this.log.debug('announcement dropped', { reason: res.reason, detail: res.message })
      return TopicValidatorResult.Reject
    }
    // Gossipsub signs every message; the announcement must speak for its signer only.
    if (msg.type !== 'signed' || msg.from.toString() !== res.announcement.peer) {
      this.components.stats?.onAnnouncement?.('spoofed')
      return TopicValidatorResult.Reject
    }
    this.decoded.set(msg, res.announcement)
    return TopicValidatorResult.Accept
  }

  private validateDelta(msg: Message): TopicValidatorResult {
    const res = decodeDelta(msg.data)
    if (!res.ok) {
      this.components.stats?.onDelta?.(res.reason)
      this.log.debug('delta dropped', { reason: res.reason, detail: res.message })
      return TopicValidatorResult.Reject
    }
    if (msg.type !== 'signed' || msg.from.toString() !== res.delta.peer) {
      this.components.stats?.onDelta?.('spoofed')
      return TopicValidatorResult.Reject
    }
    this.decoded.set(msg, res.delta)
    return TopicValidatorResult.Accept
  }

  /** A member's delta: applied on the version held of it, or (a gap, an unknown member) its full state asked for. */
  private onDelta(d: Delta): void {
    if (d.peer === this.selfPeer) return
    const result = this.table.applyDelta(d, Date.now())
    this.components.stats?.onDelta?.(result === 'updated' ? 'accepted' : result === 'unknown' ? 'gap' : result)
    if (result === 'updated') {
      const m = this.table.get(d.peer)
      if (m !== undefined) this.afterNew(m.announcement, 'updated')
    } else if (result === 'gap') this.askState(d.peer)
    else if (result === 'unknown') this.askStateOfUnknown(d.peer)
  }

  private validateSuspect(msg: Message): TopicValidatorResult {
    const n = decodeSuspect(msg.data)
    if (n === undefined || msg.type !== 'signed' || msg.from.toString() !== n.peer) {
      this.components.stats?.onSuspectNotice?.(n === undefined ? 'malformed' : 'spoofed')
      return TopicValidatorResult.Reject
    }
    this.decoded.set(msg, n)
    return TopicValidatorResult.Accept
  }

  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic === SUSPECT_TOPIC) {
      // Another member missed a probe: check for ourselves now rather than at our next turn.
      const n = (this.decoded.get(msg) as SuspectNotice | undefined) ?? decodeSuspect(msg.data)
      if (n === undefined) return
      this.components.stats?.onSuspectNotice?.('accepted')
      // Suspected ourselves (slow, not dead): refute at once with a fresh announcement, which
      // turns every member's view of us back to alive before the suspicion ripens into failed.
      if (n.suspect === this.selfPeer) {
        this.refute(Date.now())
        return
      }
      // Someone else suspects a member: the failure detector probes it at once, as one of its own rounds.
      const m = this.swim.get(n.suspect)
      if (m?.state === 'alive') this.swim.probe(n.suspect)
      return
    }
    if (msg.topic === DELTA_TOPIC) {
      const d = (this.decoded.get(msg) as Delta | undefined) ?? decodeDeltaOrUndefined(msg.data)
      if (d !== undefined) this.onDelta(d)
      return
    }
    if (msg.topic !== MEMBERS_TOPIC) return
    let a = this.decoded.get(msg) as Announcement | undefined
    if (a === undefined) {
      const res = decodeAnnouncement(msg.data)
      if (!res.ok) return
      a = res.announcement
    }
    this.accept(a)
  }

  /** Applies an announcement (from gossipsub or straight from its member) to the table. */
  private accept(a: Announcement): void {
    if (a.peer === this.selfPeer) return
    const result = this.table.apply(a, Date.now())
    this.components.stats?.onAnnouncement?.(result === 'stale' ? 'stale' : 'accepted')
    this.afterNew(a, result)
  }

  /** What an applied announcement tells the detector. */
  private afterNew(a: Announcement, result: 'new' | 'updated' | 'stale'): void {
    if (result !== 'stale') {
      this.swim.hint(a.peer, a.addrs)
      // The detector's verdict rules; a signed, fresh announcement is a sign of life it is told about.
      const sw = this.swim.get(a.peer)
      if (sw !== undefined && sw.state !== 'alive' && a.leaving !== true) {
        this.swim.evidence(a.peer)
        if (result === 'new') this.table.setState(a.peer, sw.state as MemberStatus, Date.now())
      }
      if (sw?.coord !== undefined) this.table.setCoordinate(a.peer, sw.coord)
    }
    // No dial to every newcomer (a full mesh is N² handshakes): the detector's probes open connections as they go, and
    // the newcomer learns our state from its bootstrap ('states'), not from a re-announcement by every member.
  }

  /**
   * Answers a suspicion of this node with a fresh announcement: at once, but at most once
   * per REFUTE_MS, so that a member with the PSK sending notice after notice cannot make
   * this node flood the cluster with announcements (one per notice).
   */
  private refute(now: number): void {
    this.health.refuted(now)
    // A refutation already on its way refutes this one too.
    if (this.refuteTimer !== undefined) return
    const wait = Math.max(0, this.nextRefuteAt - now)
    this.nextRefuteAt = now + wait + REFUTE_MS
    this.refuteTimer = setTimeout(() => {
      this.refuteTimer = undefined
      if (!this.started || this.leaving) return
      // A new version in full: news to every member, whatever it held.
      this.bumpFull()
      this.announce()
    }, wait)
    this.refuteTimer.unref()
  }

  /**
   * A newcomer's first full announcement went out before any peer's subscription was known (it reached nobody): the
   * moment a peer subscribes to the members topic, it goes again, rather than at the next of JOIN_ANNOUNCE_MS.
   */
  private readonly onSubscription = (
    evt: CustomEvent<{ subscriptions: Array<{ topic: string; subscribe: boolean }> }>
  ): void => {
    if (this.heardOf || !this.started || this.leaving) return
    if (evt.detail.subscriptions.some(s => s.topic === MEMBERS_TOPIC && s.subscribe)) {
      this.heardOf = true
      this.announce()
    }
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const peer = evt.detail.toString()
    this.components.rtt.onDisconnect(peer)
    this.transport.close(peer)
    const m = this.table.get(peer)
    if (m === undefined || m.status === 'left' || m.status === 'failed' || !this.started || this.leaving) return
    // A closed connection is a strong hint: redial at once; a refusal (the process is gone) is a suspicion now,
    // which the others' confirmations ripen fast, rather than a verdict of one node.
    void this.dial(m.announcement).then(ok => {
      if (!ok && this.started) this.swim.unreachable(peer)
    })
  }

  private addrsOf(a: Pick<Announcement, 'peer' | 'addrs'>): Multiaddr[] {
    const out: Multiaddr[] = []
    for (const s of a.addrs) {
      try {
        const ma = multiaddr(s)
        out.push(ma.getComponents().some(c => c.name === 'p2p') ? ma : ma.encapsulate(`/p2p/${a.peer}`))
      } catch {}
    }
    return out
  }

  private async dial(a: Announcement): Promise<boolean> {
    if (this.dialing.has(a.peer)) return true
    const addrs = this.addrsOf(a)
    if (addrs.length === 0) return false
    this.dialing.add(a.peer)
    try {
      await this.components.node.dial(addrs, {
        signal: AbortSignal.timeout(Math.max(1000, this.init.suspectTimeoutMs * this.health.multiplier))
      })
      return true
    } catch {
      return false
    } finally {
      this.dialing.delete(a.peer)
    }
  }

  /**
   * Every 100 ms: samples this node's event-loop lag (local health, which stretches the detector's timeouts) and
   * drops members that failed or left long ago. Liveness itself is the detector's (swim.ts), not silence's.
   */
  private tick(): void {
    const now = Date.now()
    const tick = performance.now()
    this.health.sample(now, Math.max(0, tick - this.lastTick - this.tickMs))
    this.lastTick = tick
    this.reportHealth(now)
    this.table.tick(now, {
      suspectTimeoutMs: Infinity,
      forgetAfterMs: this.init.forgetAfterMs,
      silenceMs: Infinity
    })
    // Members the detector knows whose announcement never came (an ask lost with its dial): ask again, a few a round.
    if (tick - this.lastStateRetry >= STATE_RETRY_MS && !this.leaving) {
      this.lastStateRetry = tick
      let asked = 0
      for (const m of this.swim.list()) {
        if (asked >= STATE_RETRY_BATCH) break
        // Suspect ones too: a loaded host's members are often suspect for a moment, and would stay unknown.
        if (isLive(m.state) && this.table.get(m.peer) === undefined) {
          this.sendState(m.peer, true)
          asked++
        }
      }
    }
    for (const m of this.swim.list())
      if (
        (m.state === 'failed' || m.state === 'left') &&
        tick - m.since > this.init.forgetAfterMs &&
        !this.table.get(m.peer)
      )
        this.swim.forget(m.peer)
  }

  /**
   * Says so when this node turns slow enough to stretch its timeouts, and when it recovers;
   * at info at most once a minute (a loaded node may flap), else at debug.
   */
  private reportHealth(now: number): void {
    const m = this.health.multiplier
    if (m > 1 && this.slowSince === undefined) {
      this.slowSince = now
      this.slowLevel = now - this.slowLoggedAt > SLOW_LOG_INTERVAL_MS ? 'info' : 'debug'
      if (this.slowLevel === 'info') this.slowLoggedAt = now
      this.log[this.slowLevel](
        `this node is slow (event loop ${Math.round(this.health.lag)} ms late): failure-detector timeouts ×${m} until it recovers`
      )
    } else if (m === 1 && this.slowSince !== undefined) {
      this.log[this.slowLevel](
        `this node has recovered after ${((now - this.slowSince) / 1000).toFixed(1)} s: failure-detector timeouts back to normal`
      )
      this.slowSince = undefined
    }
  }

  /** Keeps trying the bootstraps while this node knows no live member. */
  private rejoin(): void {
    const alive = this.table.list().some(m => m.status === 'alive')
    if (alive || this.init.bootstraps.length === 0) return
    for (const peer of this.bootstrapPeers()) this.swim.join(peer)
    if (this.rejoining) return
    this.rejoining = true
    void Promise.allSettled(
      this.init.bootstraps.map(
        async b =>
          await this.components.node.dial(multiaddr(b), { signal: AbortSignal.timeout(BOOTSTRAP_DIAL_TIMEOUT_MS) })
      )
    ).finally(() => {
      this.rejoining = false
    })
  }

  /** Members other than this node. */
  members(): Member[] {
    return this.table.list()
  }
}

/** Five significant digits (10 ns at 1 ms) are plenty for an estimate and halve a probe's bytes. */
function wireCoordinate(c: Coordinate): Coordinate {
  const r = (x: number): number => Number(x.toPrecision(5))
  return { vec: c.vec.map(r), error: r(c.error), adjustment: r(c.adjustment), height: r(c.height) }
}

function isLive(s: string | undefined): boolean {
  return s === 'alive' || s === 'suspect'
}

function decodeDeltaOrUndefined(data: Uint8Array): Delta | undefined {
  const res = decodeDelta(data)
  return res.ok ? res.delta : undefined
}

/** catalog, instances and capacity, which a peer may leave out, filled in (as decodeAnnouncement does). */
function filled(raw: Announcement): Announcement {
  return { ...raw, catalog: raw.catalog ?? [], instances: raw.instances ?? {}, capacity: raw.capacity ?? {} }
}

function peerOfAddr(ma: Multiaddr): string | undefined {
  return ma.getComponents().find(c => c.name === 'p2p')?.value
}

/** 12D3KooW…5qGjud: enough to tell members apart in a log or a table. */
export function shortPeer(peer: string): string {
  return peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer
}
