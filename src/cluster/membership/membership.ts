// Gossip membership: announces this node on /physarum/members/1 (at start, on every
// change, periodically, and as a leave on shutdown), keeps the member table from
// everyone's announcements, keeps a connection to every member, and detects failures
// by probing each member over the rtt module (a killed process refuses the redial at
// once; a frozen one stops answering probes). A node that is itself slow stretches its
// own timeouts (local health, health.ts) rather than declare healthy members failed.
import type { ScaleRecord } from '../../scale/protocol.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { Startable, PeerId } from '@libp2p/interface'
import {
  MEMBERS_TOPIC,
  SUSPECT_TOPIC,
  decodeSuspect,
  encodeSuspect,
  decodeAnnouncement,
  encodeAnnouncement,
  type Announcement,
  type AppInstances,
  type SuspectNotice
} from './announcement.js'
import { MemberTable, type Member, type TableTiming } from './table.js'
import { LocalHealth } from './health.js'
import type { PhysarumNode } from '../node.js'
import type { RttService } from '../rtt.js'
import { debugOn, type Logger } from '../../util/log.js'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  BOOTSTRAP_DIAL_TIMEOUT_MS,
  FAILED_PROBE_FACTOR,
  LEAVE_FLUSH_MS,
  PROBE_SPACING_MS,
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
  onSuspectNotice?: (result: 'accepted' | 'malformed' | 'spoofed') => void
}

export class Membership implements Startable {
  readonly table = new MemberTable()
  private seq = Date.now()
  private timers: NodeJS.Timeout[] = []
  private announceTimer?: NodeJS.Timeout
  private started = false
  private leaving = false
  private probing = new Set<string>()
  private readonly lastProbe = new Map<string, number>()
  private dialing = new Set<string>()
  private readonly selfPeer: string
  private readonly timing: Omit<TableTiming, 'silenceMs'>
  private readonly log: Logger
  /** What the validator decoded, handed to the message handler (same message object). */
  private readonly decoded = new WeakMap<Message, Announcement | SuspectNotice>()
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
    this.timing = { suspectTimeoutMs: init.suspectTimeoutMs, forgetAfterMs: init.forgetAfterMs }
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
    // A member that probes us is alive: evidence in the other direction, at no cost.
    components.rtt.onInbound = peer => {
      if (this.started) this.table.heard(peer, Date.now())
    }
    this.table.on('forget', peer => {
      components.rtt.forget(peer)
      this.lastProbe.delete(peer)
      this.peerIds.delete(peer)
    })
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
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscription)
    node.addEventListener('peer:disconnect', this.onDisconnect)
    pubsub.subscribe(MEMBERS_TOPIC)
    pubsub.subscribe(SUSPECT_TOPIC)
    this.started = true
    this.announce()
    this.timers.push(
      setInterval(() => {
        this.announce()
      }, this.init.announceIntervalMs)
    )
    this.lastTick = performance.now()
    this.timers.push(
      setInterval(() => {
        this.probeAll()
      }, this.tickMs)
    )
    this.timers.push(
      setInterval(() => {
        this.rejoin()
      }, REJOIN_INTERVAL_MS)
    )
    for (const t of this.timers) t.unref()
  }

  /** The graceful part of a stop: no more probes or announcements, then a leave announcement, given time to go out. */
  async beforeStop(): Promise<void> {
    if (!this.started || this.leaving) return
    this.stopTimers()
    this.leaving = true
    await this.publish()
    // Give gossipsub a moment to flush the leave to every mesh peer before the streams close.
    await sleep(LEAVE_FLUSH_MS)
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    if (this.announceTimer !== undefined) clearTimeout(this.announceTimer)
  }

  /** Stops; without beforeStop first, others see this node fail rather than leave. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.stopTimers()
    const { node } = this.components
    const pubsub = node.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    node.removeEventListener('peer:disconnect', this.onDisconnect)
    pubsub.topicValidators.delete(MEMBERS_TOPIC)
    pubsub.topicValidators.delete(SUSPECT_TOPIC)
    try {
      pubsub.unsubscribe(MEMBERS_TOPIC)
      pubsub.unsubscribe(SUSPECT_TOPIC)
    } catch (err) {
      debugOn(this.log, 'unsubscribe on stop')(err)
    }
    this.started = false
  }

  /** Announces soon (coalescing bursts of changes into one message). */
  announceSoon(delayMs = 5): void {
    if (!this.started || this.announceTimer !== undefined) return
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined
      this.announce()
    }, delayMs)
  }

  private announce(): void {
    if (!this.started) return
    void this.publish()
  }

  /** This node's own announcement as it would be published now. */
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
      seq: this.seq,
      ts: Date.now(),
      ...(state.scale !== undefined && Object.keys(state.scale).length > 0 ? { scale: state.scale } : {}),
      ...(this.leaving ? { leaving: true } : {})
    }
  }

  private async publish(): Promise<void> {
    this.seq++
    const a = this.selfAnnouncement()
    try {
      await this.components.node.services.pubsub.publish(MEMBERS_TOPIC, encodeAnnouncement(a))
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
      this.table.confirm(n.suspect, n.peer, Date.now())
      const m = this.table.get(n.suspect)
      if (m !== undefined && m.status === 'alive' && !this.probing.has(n.suspect)) void this.probe(m, true)
      return
    }
    if (msg.topic !== MEMBERS_TOPIC) return
    let a = this.decoded.get(msg) as Announcement | undefined
    if (a === undefined) {
      const res = decodeAnnouncement(msg.data)
      if (!res.ok) return
      a = res.announcement
    }
    if (a.peer === this.selfPeer) return
    const result = this.table.apply(a, Date.now())
    this.components.stats?.onAnnouncement?.(result === 'stale' ? 'stale' : 'accepted')
    if (result === 'new' && a.leaving !== true) {
      // Tell the newcomer about us at once instead of at the next periodic round.
      this.announceSoon()
      this.connect(a)
    }
  }

  /**
   * Answers a suspicion of this node with a fresh announcement: at once, but at most once
   * per REFUTE_MS, so that a member with the PSK sending notice after notice cannot make
   * this node flood the cluster with announcements (one per notice).
   */
  private refute(now: number): void {
    this.health.refuted(now)
    // An announcement already on its way refutes this one too.
    if (this.announceTimer !== undefined) return
    const wait = Math.max(0, this.nextRefuteAt - now)
    this.nextRefuteAt = now + wait + REFUTE_MS
    this.announceSoon(wait)
  }

  private readonly onSubscription = (): void => {
    // A peer (re)subscribed: it may not know us yet.
    this.announceSoon()
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const peer = evt.detail.toString()
    this.components.rtt.onDisconnect(peer)
    const m = this.table.get(peer)
    if (m === undefined || m.status === 'left' || m.status === 'failed' || !this.started) return
    // A closed connection is a strong hint: redial at once; a refusal means the process is gone.
    void this.dial(m.announcement).then(ok => {
      if (!ok && this.started) this.table.unreachable(peer, Date.now())
    })
  }

  private addrsOf(a: Announcement): Multiaddr[] {
    const out: Multiaddr[] = []
    for (const s of a.addrs) {
      try {
        const ma = multiaddr(s)
        out.push(ma.getComponents().some(c => c.name === 'p2p') ? ma : ma.encapsulate(`/p2p/${a.peer}`))
      } catch {}
    }
    return out
  }

  private connect(a: Announcement): void {
    if (this.components.node.getConnections(this.peerId(a.peer)).length > 0) return
    void this.dial(a)
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
   * Probes the members that are due. Each member is probed every ProbeIntervalMs, or
   * less often in a large cluster (about 10 probes per second in all), so that the
   * cost per node stays flat; a missed probe is retried at once, so that a slow answer
   * under load is not taken for a failure, and a member that misses both is announced
   * on the suspect topic so that every other member probes it at once.
   */
  private probeAll(): void {
    const now = Date.now()
    const tick = performance.now()
    this.health.sample(now, Math.max(0, tick - this.lastTick - this.tickMs))
    this.lastTick = tick
    this.reportHealth(now)
    const slower = this.health.multiplier
    const members = this.table.list()
    const period = Math.max(this.init.probeIntervalMs, members.length * PROBE_SPACING_MS)
    for (const m of members) {
      const peer = m.announcement.peer
      if (m.status === 'left' || this.probing.has(peer)) continue
      // Failed members are retried less often, so that one that comes back is noticed.
      const due =
        (this.lastProbe.get(peer) ?? 0) +
        (m.status === 'failed'
          ? FAILED_PROBE_FACTOR * period
          : m.status === 'suspect'
            ? this.init.probeIntervalMs
            : period)
      if (now < due) continue
      void this.probe(m, true)
    }
    // Silence long enough to have missed two probes makes a member suspect.
    this.table.tick(now, {
      suspectTimeoutMs: this.timing.suspectTimeoutMs * slower,
      forgetAfterMs: this.timing.forgetAfterMs,
      silenceMs: (2 * period + this.init.probeTimeoutMs) * slower
    })
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

  private async probe(m: Member, retry: boolean): Promise<void> {
    const peer = m.announcement.peer
    this.probing.add(peer)
    this.lastProbe.set(peer, Date.now())
    const pid = this.peerId(peer)
    try {
      if (this.components.node.getConnections(pid).length === 0 && !(await this.dial(m.announcement)))
        throw new Error('unreachable')
      await this.components.rtt.probe(pid, this.init.probeTimeoutMs * this.health.multiplier)
      this.table.heard(peer, Date.now())
      this.probing.delete(peer)
    } catch {
      this.probing.delete(peer)
      if (retry && this.started) {
        await this.probe(m, false)
        return
      }
      if (this.table.missed(peer, Date.now()) && this.started) {
        void this.components.node.services.pubsub
          .publish(SUSPECT_TOPIC, encodeSuspect({ v: 1, peer: this.selfPeer, suspect: peer, ts: Date.now() }))
          .catch(() => {})
      }
    }
  }

  /** Keeps trying the bootstraps while this node knows no live member. */
  private rejoin(): void {
    const alive = this.table.list().some(m => m.status === 'alive')
    if (alive || this.init.bootstraps.length === 0) return
    for (const b of this.init.bootstraps) {
      void this.components.node
        .dial(multiaddr(b), { signal: AbortSignal.timeout(BOOTSTRAP_DIAL_TIMEOUT_MS) })
        .catch(() => {})
    }
  }

  /** Members other than this node. */
  members(): Member[] {
    return this.table.list()
  }
}

/** 12D3KooW…5qGjud: enough to tell members apart in a log or a table. */
export function shortPeer(peer: string): string {
  return peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer
}
