// The SWIM failure detector with Lifeguard's refinements, as a pure state machine: the
// clock, the network and randomness are injected, so that tests drive it in milliseconds.
// Each period it probes one member (round-robin over a shuffled list), asks k others to
// probe it when the direct probe goes unanswered, suspects it when nobody got an answer,
// and fails it when the suspicion is not refuted in time; state changes travel piggybacked
// on probes and by gossip, each a bounded number of times; push-pull with one random
// member heals the rest. Membership (membership.ts) runs it over libp2p (swim-transport.ts).
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  AWARENESS_MAX,
  DIAL_ALLOWANCE_MS,
  GOSSIP_INTERVAL_MS,
  GOSSIP_NODES,
  INDIRECT_CHECKS,
  JOIN_ANSWER_MS,
  JOIN_RETRY_MAX_MS,
  JOIN_RETRY_MS,
  NACK_FRACTION,
  MAX_PIGGYBACK,
  MAX_QUEUED_UPDATES,
  PUSH_PULL_INTERVAL_MS,
  RECONNECT_INTERVAL_MS,
  RETRANSMIT_MULT,
  SUSPICION_CONFIRMATIONS,
  SUSPICION_MAX_MULT,
  SUSPICION_PROBERS,
  SUSPICION_ROUNDS_MULT,
  UNKNOWN_SYNC_MS
} from './constants.js'
import {
  decodeCoordinate,
  encodeCoordinate,
  type MemberState,
  type SwimMessage,
  type Update,
  type WireCoordinate
} from './swim-protocol.js'

export interface SwimConfig {
  /** The protocol period (ms): one member probed per period. */
  probeIntervalMs: number
  /** A direct probe's wait (ms) before others are asked to probe. */
  probeTimeoutMs: number
  /** The least wait of a suspicion (ms) in a cluster of up to 10, reached with enough confirmations. */
  suspicionMinMs: number
  indirectChecks?: number
  retransmitMult?: number
  maxPiggyback?: number
  gossipIntervalMs?: number
  gossipNodes?: number
  suspicionMaxMult?: number
  suspicionConfirmations?: number
  pushPullIntervalMs?: number
  reconnectIntervalMs?: number
}

export type Timer = unknown

export interface SwimEnv {
  self: string
  /** Monotonic milliseconds. */
  now: () => number
  setTimer: (fn: () => void, ms: number) => Timer
  clearTimer: (t: Timer) => void
  /** Sends a message; false when it waits for a stream to the member to open (a dial) rather than going out now. */
  send: (to: string, msg: SwimMessage) => boolean | void
  random: () => number
  /** This node's addresses, sent with its alive updates. */
  addrs: () => string[]
  /** This node's network coordinate, sent with pings and acks. */
  coordinate?: () => WireCoordinate | undefined
  /** Health score from outside the detector (event-loop lag, health.ts), added to its own awareness. */
  externalHealth?: () => number
  /** The version of a member's announcement as this node holds it (this node's own for self), sent in push-pulls. */
  version?: (peer: string) => number | undefined
}

export interface SwimMember {
  peer: string
  state: MemberState
  inc: number
  addrs: string[]
  /** When the state last changed (env.now). */
  since: number
  /** The member's own coordinate, from its last ping or ack, or second-hand from a push-pull. */
  coord?: WireCoordinate
  suspicion?: Suspicion
}

interface Suspicion {
  started: number
  confirmations: Set<string>
  /** Confirmations that bring the wait to its least. */
  k: number
  minMs: number
  maxMs: number
  timer: Timer
  /** This node has said it suspects the member too. */
  selfReported: boolean
}

interface Probe {
  target: string
  sentAt: number
  acked: boolean
  expectedNacks: number
  nacks: number
  timers: Timer[]
  /** Its ping went out on an open stream: the ack's round trip is an RTT sample (a dial's is not). */
  sample: boolean
}

export interface SwimEvents {
  /** A member's state changed (previous undefined: a new member). */
  change: [member: SwimMember, previous: MemberState | undefined]
  /** A direct probe was answered: an RTT sample (ms) and the member's coordinate, if it sent one. */
  rtt: [peer: string, ms: number, coord: WireCoordinate | undefined]
  /** A member's coordinate arrived with a message from it. */
  coordinate: [peer: string, coord: WireCoordinate]
  /** This node refuted a suspicion (or failure) of itself. */
  refute: [incarnation: number]
  /** A full state exchange with a member was started (join, periodic, unknown sender). */
  sync: [peer: string, reason: 'join' | 'periodic' | 'unknown']
  /** A newcomer joined through this node (its first push-pull): it wants the rest of the state too. */
  joined: [peer: string]
  /** A push-pull named the version of a member's announcement that its sender holds. */
  version: [peer: string, version: number]
}

interface Queued {
  update: Update
  transmits: number
  /** Insertion order, for a stable pick among equally sent updates. */
  id: number
}

/** Lifeguard's suspicion timeout: from max down to min as confirmations arrive (log scale). */
export function suspicionTimeout(confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs
  const frac = Math.log(Math.min(confirmations, k) + 1) / Math.log(k + 1)
  return Math.max(minMs, maxMs - (maxMs - minMs) * frac)
}

/** The coordinate a ping or ack carries: compact from this version, as an object from older peers. */
function coordinateOf(msg: { coord?: WireCoordinate; co?: string }): WireCoordinate | undefined {
  return msg.co !== undefined ? decodeCoordinate(msg.co) : msg.coord
}

export class Swim extends EventEmitter<SwimEvents> {
  private readonly members = new Map<string, SwimMember>()
  private incarnation: number
  private seq = 0
  private readonly probes = new Map<number, Probe>()
  /** Probes made for another member (ping-req): our seq → theirs. */
  private readonly relays = new Map<number, { requester: string; seq: number; timer: Timer }>()
  private probeList: string[] = []
  private probeIndex = 0
  private readonly queue = new Map<string, Queued>()
  private queueId = 0
  private awareness = 0
  private running = false
  private leaving = false
  private probeTimer?: Timer
  private gossipTimer?: Timer
  private pushPullTimer?: Timer
  private reconnectTimer?: Timer
  private readonly unknownSyncAt = new Map<string, number>()
  /** Members joined through: contacted again each period while this node knows no live member (a lost join). */
  private readonly seeds = new Set<string>()
  /** When the join is sent again while no member is known, and the wait after that (doubling). */
  private nextJoinAt = 0
  private joinRetryMs = JOIN_RETRY_MS
  /** When each newcomer's join was last answered. */
  private readonly joinAnsweredAt = new Map<string, number>()
  private readonly c: Required<SwimConfig>

  constructor(
    private readonly env: SwimEnv,
    config: SwimConfig,
    opts: { incarnation?: number } = {}
  ) {
    super()
    this.c = {
      indirectChecks: INDIRECT_CHECKS,
      retransmitMult: RETRANSMIT_MULT,
      maxPiggyback: MAX_PIGGYBACK,
      gossipIntervalMs: GOSSIP_INTERVAL_MS,
      gossipNodes: GOSSIP_NODES,
      suspicionMaxMult: SUSPICION_MAX_MULT,
      suspicionConfirmations: SUSPICION_CONFIRMATIONS,
      pushPullIntervalMs: PUSH_PULL_INTERVAL_MS,
      reconnectIntervalMs: RECONNECT_INTERVAL_MS,
      ...config
    }
    this.incarnation = opts.incarnation ?? 0
  }

  get self(): string {
    return this.env.self
  }
  get selfIncarnation(): number {
    return this.incarnation
  }
  get(peer: string): SwimMember | undefined {
    return this.members.get(peer)
  }
  list(): SwimMember[] {
    return [...this.members.values()]
  }
  /** Updates waiting to be disseminated. */
  get pending(): number {
    return this.queue.size
  }

  /** Lifeguard's local health multiplier: this node's probe timeouts and period stretch by it. */
  get multiplier(): number {
    return 1 + Math.min(AWARENESS_MAX, this.awareness + (this.env.externalHealth?.() ?? 0))
  }
  /** Awareness alone (0 … AWARENESS_MAX): failed probes without nacks raise it, answered ones lower it. */
  get awarenessScore(): number {
    return this.awareness
  }

  private adjustAwareness(delta: number): void {
    this.awareness = Math.max(0, Math.min(AWARENESS_MAX, this.awareness + delta))
  }

  /** Members other than this node that count for N (not failed, not left), plus this node. */
  private liveCount(): number {
    let n = 1
    for (const m of this.members.values()) if (m.state === 'alive' || m.state === 'suspect') n++
    return n
  }

  private retransmitLimit(): number {
    return this.c.retransmitMult * Math.ceil(Math.log10(this.liveCount() + 1))
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.enqueue(this.selfUpdate())
    // The first probe at a random point of the period (memberlist's stagger): members started together do not probe in
    // lockstep, which bunches the probes a member gets and leaves long gaps between them.
    this.scheduleProbe(this.env.random() * this.c.probeIntervalMs)
    this.gossipTimer = this.env.setTimer(this.gossipTick, this.c.gossipIntervalMs)
    this.schedulePushPull()
    this.reconnectTimer = this.env.setTimer(this.reconnectTick, this.c.reconnectIntervalMs)
  }

  stop(): void {
    this.running = false
    for (const t of [this.probeTimer, this.gossipTimer, this.pushPullTimer, this.reconnectTimer])
      if (t !== undefined) this.env.clearTimer(t)
    for (const p of this.probes.values()) for (const t of p.timers) this.env.clearTimer(t)
    this.probes.clear()
    for (const r of this.relays.values()) this.env.clearTimer(r.timer)
    this.relays.clear()
    for (const m of this.members.values()) if (m.suspicion !== undefined) this.env.clearTimer(m.suspicion.timer)
  }

  /** Graceful leave: a 'left' update about this node, sent at once to a few members and then gossiped. */
  leave(): void {
    if (this.leaving) return
    this.leaving = true
    this.incarnation++
    const u: Update = { peer: this.self, s: 'left', inc: this.incarnation }
    this.queue.clear()
    this.enqueue(u)
    const targets = this.randomMembers(2 * this.c.gossipNodes, m => m.state === 'alive' || m.state === 'suspect')
    for (const t of targets) this.env.send(t, { v: 1, t: 'gossip', updates: [u] })
  }

  /** Contacts a member (a bootstrap) with this node's full state; its answer carries the cluster's. */
  join(peer: string): void {
    if (peer === this.self) return
    this.seeds.add(peer)
    this.nextJoinAt = this.env.now() + this.joinRetryMs
    this.joinRetryMs = Math.min(JOIN_RETRY_MAX_MS, 2 * this.joinRetryMs)
    this.sync(peer, 'join')
  }

  /**
   * A sign that a member exists, from outside the detector (its announcement): a member not known yet is taken as
   * alive at incarnation 0, which any real update about it supersedes.
   */
  hint(peer: string, addrs: string[]): void {
    if (peer === this.self || this.members.has(peer)) return
    this.apply({ peer, s: 'alive', inc: 0, addrs }, false)
  }

  /** Strong evidence from outside (its connection closed and a redial was refused): suspect it now. */
  unreachable(peer: string): void {
    const m = this.members.get(peer)
    if (m?.state === 'alive') this.suspect(m, this.self)
    else if (m?.state === 'suspect') this.confirm(m, this.self)
  }

  private selfUpdate(): Update {
    return { peer: this.self, s: 'alive', inc: this.incarnation, addrs: this.env.addrs() }
  }

  // --- probing ---------------------------------------------------------------------------

  private scheduleProbe(delayMs = this.c.probeIntervalMs * this.multiplier): void {
    if (!this.running) return
    this.probeTimer = this.env.setTimer(() => {
      this.probeTick()
      this.scheduleProbe()
    }, delayMs)
  }

  /** The next member to probe: round-robin over a list shuffled once per round (SWIM §4.3). */
  private nextTarget(): string | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIndex < this.probeList.length) {
        const peer = this.probeList[this.probeIndex++]
        const m = this.members.get(peer)
        if (m !== undefined && (m.state === 'alive' || m.state === 'suspect')) return peer
      }
      this.probeList = [...this.members.keys()]
      for (let i = this.probeList.length - 1; i > 0; i--) {
        const j = Math.floor(this.env.random() * (i + 1))
        ;[this.probeList[i], this.probeList[j]] = [this.probeList[j], this.probeList[i]]
      }
      this.probeIndex = 0
    }
    return undefined
  }

  /**
   * A new member goes into this round's probe list at a random place still ahead (SWIM §4.3, as memberlist does), not
   * only into the next round's: otherwise no member that knew the cluster before it probed it for up to a whole round,
   * N periods (50 s at 100 members), and a newcomer that stopped soon after went unnoticed that long.
   */
  private enlist(peer: string): void {
    const ahead = this.probeList.length - this.probeIndex
    if (ahead <= 0) return
    const at = this.probeIndex + Math.floor(this.env.random() * (ahead + 1))
    this.probeList.splice(at, 0, peer)
  }

  private probeTick(): void {
    if (this.leaving) return
    const target = this.nextTarget()
    if (target !== undefined) {
      this.joinRetryMs = JOIN_RETRY_MS
      this.probe(target)
      return
    }
    // Nobody live known yet: the join (or its answer) was lost, or is still on its way on a slow host. Ask again, less
    // and less often: every retry costs the seed a full answer (every member, every announcement).
    const now = this.env.now()
    if (now < this.nextJoinAt) return
    this.nextJoinAt = now + this.joinRetryMs
    this.joinRetryMs = Math.min(JOIN_RETRY_MAX_MS, 2 * this.joinRetryMs)
    for (const seed of this.seeds) this.sync(seed, 'join')
  }

  /** Probes one member now: direct, then indirect through k others, then suspicion. */
  probe(target: string): void {
    const seq = ++this.seq
    const lhm = this.multiplier
    const sentAt = this.env.now()
    // No coordinate in a ping: the prober's Vivaldi sample needs the target's, which comes back in the ack (never
    // within this call: the transport delivers later).
    const sample = this.env.send(target, { v: 1, t: 'ping', seq, updates: this.piggyback(target) }) !== false
    const p: Probe = { target, sentAt, acked: false, expectedNacks: 0, nacks: 0, timers: [], sample }
    this.probes.set(seq, p)
    const probeTimeout = this.c.probeTimeoutMs * lhm + (p.sample ? 0 : DIAL_ALLOWANCE_MS)
    // The end of the protocol period: at least the probe timeout, so that indirect probes get their turn.
    const period = Math.max(this.c.probeIntervalMs * lhm, 2 * probeTimeout)
    const conclude = (): void => {
      this.concludeProbe(seq, p)
    }
    const end = this.env.setTimer(conclude, period)
    p.timers.push(
      end,
      this.env.setTimer(() => {
        if (p.acked || !this.running) return
        const helpers = this.randomMembers(this.c.indirectChecks, m => m.state === 'alive' && m.peer !== target)
        p.expectedNacks = helpers.length
        let dialled = false
        for (const h of helpers)
          if (this.env.send(h, { v: 1, t: 'ping-req', seq, target, updates: this.piggyback(h) }) === false)
            dialled = true
        // A helper reached only through a dial answers that much later: the period waits for it.
        if (dialled) {
          this.env.clearTimer(end)
          p.timers.push(this.env.setTimer(conclude, period - probeTimeout + DIAL_ALLOWANCE_MS))
        }
      }, probeTimeout)
    )
  }

  /** The end of a probe: at the end of its period, or as soon as every helper has answered that it got no ack. */
  private concludeProbe(seq: number, p: Probe): void {
    if (this.probes.get(seq) !== p) return
    this.probes.delete(seq)
    for (const t of p.timers) this.env.clearTimer(t)
    if (!this.running) return
    if (p.acked) {
      this.adjustAwareness(-1)
      return
    }
    // Lifeguard: helpers that did not even send a nack point at this node's own trouble, not the target's.
    this.adjustAwareness(p.expectedNacks > 0 ? p.expectedNacks - p.nacks : 1)
    const m = this.members.get(p.target)
    if (m === undefined) return
    if (m.state === 'alive') this.suspect(m, this.self)
    else if (m.state === 'suspect') this.confirm(m, this.self)
  }

  private withCoord(): { co?: string } {
    const coord = this.env.coordinate?.()
    return coord === undefined ? {} : { co: encodeCoordinate(coord) }
  }

  // --- receiving -------------------------------------------------------------------------

  /** A message from `from` (the transport's authenticated sender). */
  receive(from: string, msg: SwimMessage): void {
    if (!this.running || from === this.self || msg.t === 'state' || msg.t === 'states') return
    const known = this.members.get(from)
    if (known === undefined && msg.t !== 'sync') this.syncUnknown(from)
    if (msg.t === 'sync') {
      this.merge(msg.members)
      if (msg.digest !== undefined && msg.join !== true) {
        // A periodic push-pull by digest: the same view needs no answer; another one starts a full exchange.
        if (msg.reply && !this.leaving && msg.digest !== this.viewDigest())
          this.env.send(from, { v: 1, t: 'sync', reply: true, members: this.snapshot(false) })
        return
      }
      if (msg.join === true) {
        // One answer per newcomer per JOIN_ANSWER_MS: the joins it queued while its stream opened arrive at once.
        const now = this.env.now()
        const at = this.joinAnsweredAt.get(from)
        if (at !== undefined && now - at < JOIN_ANSWER_MS) return
        if (this.joinAnsweredAt.size > 4096) this.joinAnsweredAt.clear()
        this.joinAnsweredAt.set(from, now)
      }
      // A newcomer gets the coordinates too (estimates before its first probes); a periodic exchange goes without.
      if (msg.reply && !this.leaving)
        this.env.send(from, { v: 1, t: 'sync', reply: false, members: this.snapshot(msg.join === true) })
      if (msg.join === true && !this.leaving) this.emit('joined', from)
      return
    }
    if (msg.updates !== undefined) {
      let stale = false
      for (const u of msg.updates) {
        // A claim against an older incarnation of ours: the sender missed our refutation; send it again, to it.
        if (u.peer === this.self && u.s !== 'alive' && u.inc < this.incarnation && !this.leaving) stale = true
        this.apply(u, true)
      }
      if (stale) this.env.send(from, { v: 1, t: 'gossip', updates: [this.selfUpdate()] })
    }
    switch (msg.t) {
      case 'ping': {
        const coord = coordinateOf(msg)
        if (coord !== undefined) this.noteCoordinate(from, coord)
        if (this.leaving) return
        this.env.send(from, { v: 1, t: 'ack', seq: msg.seq, ...this.withCoord(), updates: this.piggyback(from) })
        return
      }
      case 'ack': {
        const relay = this.relays.get(msg.seq)
        if (relay !== undefined) {
          this.relays.delete(msg.seq)
          this.env.clearTimer(relay.timer)
          this.env.send(relay.requester, { v: 1, t: 'ack', seq: relay.seq, updates: this.piggyback(relay.requester) })
          return
        }
        const p = this.probes.get(msg.seq)
        if (p === undefined || p.acked) return
        p.acked = true
        if (from === p.target) {
          const coord = coordinateOf(msg)
          if (p.sample) this.emit('rtt', from, this.env.now() - p.sentAt, coord)
          if (coord !== undefined) this.noteCoordinate(from, coord)
        }
        return
      }
      case 'nack': {
        const p = this.probes.get(msg.seq)
        if (p === undefined || p.acked) return
        p.nacks++
        // Every helper tried and got nothing: the period's rest would only wait for acks nobody is asked for.
        if (p.expectedNacks > 0 && p.nacks >= p.expectedNacks) this.concludeProbe(msg.seq, p)
        return
      }
      case 'ping-req': {
        if (this.leaving) return
        const seq = ++this.seq
        const timer = this.env.setTimer(
          () => {
            if (!this.relays.delete(seq)) return
            this.env.send(from, { v: 1, t: 'nack', seq: msg.seq })
          },
          NACK_FRACTION * this.c.probeTimeoutMs * this.multiplier
        )
        this.relays.set(seq, { requester: from, seq: msg.seq, timer })
        this.env.send(msg.target, { v: 1, t: 'ping', seq, updates: this.piggyback(msg.target) })
        return
      }
      case 'gossip':
        return
    }
  }

  private noteCoordinate(peer: string, coord: WireCoordinate): void {
    const m = this.members.get(peer)
    if (m === undefined) return
    m.coord = coord
    this.emit('coordinate', peer, coord)
  }

  /** A message from a member we do not know: a push-pull teaches each of us the other (rate-limited per member). */
  private syncUnknown(peer: string): void {
    const now = this.env.now()
    const at = this.unknownSyncAt.get(peer)
    if (at !== undefined && now - at < UNKNOWN_SYNC_MS) return
    if (this.unknownSyncAt.size > 4096) this.unknownSyncAt.clear()
    this.unknownSyncAt.set(peer, now)
    this.sync(peer, 'unknown')
  }

  private sync(peer: string, reason: 'join' | 'periodic' | 'unknown'): void {
    this.emit('sync', peer, reason)
    if (reason === 'periodic') {
      // Only this node's own entry and a digest of its view: at rest, when views agree, a push-pull is one short frame
      // whatever N is, not two lists of every member.
      this.env.send(peer, {
        v: 1,
        t: 'sync',
        reply: true,
        digest: this.viewDigest(),
        members: this.snapshot(false, true)
      })
      return
    }
    this.env.send(peer, {
      v: 1,
      t: 'sync',
      reply: true,
      ...(reason === 'join' ? { join: true } : {}),
      members: this.snapshot(true)
    })
  }

  /**
   * Every member's state, this node's included: a push-pull's payload, with the version of each member's announcement
   * held here. Coordinates only when asked (a join): they travel with every ack, and are most of an entry's bytes.
   */
  snapshot(coords = true, selfOnly = false): Update[] {
    const out: Update[] = [this.leaving ? { peer: this.self, s: 'left', inc: this.incarnation } : this.selfUpdate()]
    const coord = this.env.coordinate?.()
    if (coord !== undefined && coords) out[0].coord = coord
    for (const m of selfOnly ? [] : this.members.values()) {
      // Addresses only where they are of use: to reach a member that is alive.
      const u: Update = { peer: m.peer, s: m.state, inc: m.inc }
      if (m.state === 'alive' || m.state === 'suspect') u.addrs = m.addrs
      if (m.coord !== undefined && coords) u.coord = m.coord
      out.push(u)
    }
    if (this.env.version !== undefined)
      for (const u of out) {
        const ver = this.env.version(u.peer)
        if (ver !== undefined) u.ver = ver
      }
    return out
  }

  /**
   * A digest of this node's view for push-pull (64 bits of SHA-256): every live member (alive or suspect, one class,
   * so that a passing suspicion does not force full exchanges; this node included) with its incarnation and the
   * version of its announcement held here. Two members that agree on who is up, at which incarnation, with which
   * state, have the same digest. Failed and left members are left out: a member that joined after a failure never
   * heard of it, and the two views would differ until the failed one was forgotten.
   */
  viewDigest(): string {
    const lines: string[] = [this.digestLine(this.self, this.incarnation)]
    for (const m of this.members.values())
      if (m.state === 'alive' || m.state === 'suspect') lines.push(this.digestLine(m.peer, m.inc))
    lines.sort()
    return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)
  }

  private digestLine(peer: string, inc: number): string {
    return `${peer} ${inc} ${this.env.version?.(peer) ?? ''}`
  }

  /** Merges a push-pull: a remote 'failed' counts as a suspicion here, so the member may refute it (memberlist). */
  private merge(members: Update[]): void {
    for (const u of members) {
      const m = this.members.get(u.peer)
      if (u.coord !== undefined && m !== undefined && m.coord === undefined && u.peer !== this.self) m.coord = u.coord
      this.apply(u.s === 'failed' ? { ...u, s: 'suspect' } : u, true)
      if (u.coord !== undefined && m === undefined && u.peer !== this.self) {
        const added = this.members.get(u.peer)
        if (added !== undefined) added.coord = u.coord
      }
      if (u.ver !== undefined && u.peer !== this.self && (u.s === 'alive' || u.s === 'suspect'))
        this.emit('version', u.peer, u.ver)
    }
  }

  // --- state changes ---------------------------------------------------------------------

  /** Applies one update (piggybacked, gossiped or merged); rebroadcasts what it changed. */
  apply(u: Update, rebroadcast = true): void {
    if (u.peer === this.self) {
      this.aboutSelf(u)
      return
    }
    const m = this.members.get(u.peer)
    switch (u.s) {
      case 'alive': {
        if (m === undefined) {
          const fresh: SwimMember = {
            peer: u.peer,
            state: 'alive',
            inc: u.inc,
            addrs: u.addrs ?? [],
            since: this.env.now()
          }
          this.members.set(u.peer, fresh)
          this.enlist(u.peer)
          this.emit('change', fresh, undefined)
          if (rebroadcast) this.enqueue(u)
          return
        }
        if (u.inc <= m.inc) return
        m.inc = u.inc
        if (u.addrs !== undefined && u.addrs.length > 0) m.addrs = u.addrs
        this.setState(m, 'alive')
        if (rebroadcast) this.enqueue(u)
        return
      }
      case 'suspect': {
        if (m === undefined || u.inc < m.inc || m.state === 'failed' || m.state === 'left') return
        const by = u.by ?? u.peer
        if (m.state === 'suspect' && u.inc === m.inc) {
          this.confirm(m, by)
          return
        }
        m.inc = u.inc
        this.suspect(m, by)
        return
      }
      case 'failed':
      case 'left': {
        if (m === undefined || u.inc < m.inc || m.state === 'left') return
        if (m.state === 'failed' && u.s === 'failed') return
        m.inc = u.inc
        this.setState(m, u.s)
        if (rebroadcast) this.enqueue(u)
        return
      }
    }
  }

  /** Someone says this node is suspect, failed or left: refute with a higher incarnation (SWIM §4.2). */
  private aboutSelf(u: Update): void {
    if (u.s === 'alive' || this.leaving) return
    if (u.inc < this.incarnation) return
    this.incarnation = u.inc + 1
    this.adjustAwareness(1)
    this.enqueue(this.selfUpdate())
    this.emit('refute', this.incarnation)
  }

  private setState(m: SwimMember, state: MemberState): void {
    if (m.suspicion !== undefined && state !== 'suspect') {
      this.env.clearTimer(m.suspicion.timer)
      m.suspicion = undefined
    }
    if (m.state === state) return
    const prev = m.state
    m.state = state
    m.since = this.env.now()
    this.emit('change', m, prev)
  }

  private suspect(m: SwimMember, by: string): void {
    const n = this.liveCount()
    const k = n - 2 < this.c.suspicionConfirmations ? Math.max(0, n - 2) : this.c.suspicionConfirmations
    // The least wait must let the suspicion reach the member and its refutation come back: log_{fanout+1} N gossip
    // rounds each way (SUSPICION_ROUNDS_MULT of them for a margin), never less than the configured least wait.
    const rounds = Math.log(Math.max(2, n)) / Math.log(this.c.gossipNodes + 1)
    const minMs =
      Math.max(this.c.suspicionMinMs, SUSPICION_ROUNDS_MULT * rounds * this.c.gossipIntervalMs) * this.multiplier
    const maxMs = this.c.suspicionMaxMult * minMs
    const s: Suspicion = {
      started: this.env.now(),
      confirmations: new Set(),
      k,
      minMs,
      maxMs,
      timer: undefined,
      selfReported: by === this.self
    }
    if (by !== this.self) s.confirmations.add(by)
    s.timer = this.env.setTimer(
      () => {
        this.suspicionExpired(m)
      },
      suspicionTimeout(s.confirmations.size, k, minMs, maxMs)
    )
    m.suspicion = s
    this.setState(m, 'suspect')
    this.enqueue({ peer: m.peer, s: 'suspect', inc: m.inc, by })
    // A few of those who hear of it probe the member at once, out of turn: confirmations (or the member's refutation,
    // which the probe's piggyback asks for) in one probe period, not after the round-robin reaches it.
    if (by !== this.self && this.env.random() < SUSPICION_PROBERS / Math.max(1, n - 2)) this.probe(m.peer)
  }

  /** One more member suspects it: a new reporter shortens the wait (Lifeguard) and the news travels on. */
  private confirm(m: SwimMember, by: string): void {
    const s = m.suspicion
    if (s === undefined) return
    if (by === this.self) {
      // Our own probe failed too: others count that as a confirmation; we do not count ourselves.
      if (!s.selfReported) {
        s.selfReported = true
        this.enqueue({ peer: m.peer, s: 'suspect', inc: m.inc, by })
      }
      return
    }
    if (s.confirmations.has(by)) return
    s.confirmations.add(by)
    this.env.clearTimer(s.timer)
    const left = s.started + suspicionTimeout(s.confirmations.size, s.k, s.minMs, s.maxMs) - this.env.now()
    s.timer = this.env.setTimer(
      () => {
        this.suspicionExpired(m)
      },
      Math.max(0, left)
    )
    this.enqueue({ peer: m.peer, s: 'suspect', inc: m.inc, by })
  }

  private suspicionExpired(m: SwimMember): void {
    if (!this.running || m.state !== 'suspect' || this.members.get(m.peer) !== m) return
    this.setState(m, 'failed')
    this.enqueue({ peer: m.peer, s: 'failed', inc: m.inc, by: this.self })
  }

  /**
   * A sign of life from outside the detector (the member's fresh announcement) while this node holds it suspect or
   * failed: tell it, so that it refutes, rather than overrule the detector.
   */
  evidence(peer: string): void {
    const m = this.members.get(peer)
    if (m?.state === 'suspect' || m?.state === 'failed')
      this.env.send(peer, { v: 1, t: 'gossip', updates: [{ peer, s: m.state, inc: m.inc, by: this.self }] })
  }

  /** Drops a member that failed or left long ago. */
  forget(peer: string): void {
    const m = this.members.get(peer)
    if (m === undefined) return
    if (m.suspicion !== undefined) this.env.clearTimer(m.suspicion.timer)
    this.members.delete(peer)
    this.queue.delete(peer)
  }

  // --- dissemination ---------------------------------------------------------------------

  private enqueue(u: Update): void {
    // A newer update about a member replaces the older one: only the latest is worth sending.
    this.queue.delete(u.peer)
    this.queue.set(u.peer, { update: u, transmits: 0, id: this.queueId++ })
    if (this.queue.size > MAX_QUEUED_UPDATES) {
      const worst = [...this.queue.values()].sort((a, b) => b.transmits - a.transmits || a.id - b.id)[0]
      this.queue.delete(worst.update.peer)
    }
  }

  /**
   * Up to maxPiggyback updates, the least sent first, each counted; dropped after λ·log N sends. What this node holds
   * against the receiver itself goes first, so that it can refute at once.
   */
  private piggyback(to: string): Update[] | undefined {
    const out: Update[] = []
    const m = this.members.get(to)
    if (m !== undefined && (m.state === 'suspect' || m.state === 'failed'))
      out.push({ peer: to, s: m.state, inc: m.inc, by: this.self })
    if (this.queue.size > 0) {
      const limit = this.retransmitLimit()
      const picked = [...this.queue.values()]
        .filter(q => q.update.peer !== to || q.update.s === 'alive')
        .sort((a, b) => a.transmits - b.transmits || a.id - b.id)
        .slice(0, this.c.maxPiggyback - out.length)
      for (const q of picked) {
        out.push(q.update)
        if (++q.transmits >= limit) this.queue.delete(q.update.peer)
      }
    }
    return out.length > 0 ? out : undefined
  }

  private readonly gossipTick = (): void => {
    if (!this.running) return
    if (this.queue.size > 0) {
      // Failed members get the news too (memberlist gossips to the recently dead): one that comes back refutes.
      for (const t of this.randomMembers(this.c.gossipNodes, m => m.state !== 'left')) {
        const updates = this.piggyback(t)
        if (updates !== undefined) this.env.send(t, { v: 1, t: 'gossip', updates })
      }
    }
    this.gossipTimer = this.env.setTimer(this.gossipTick, this.c.gossipIntervalMs)
  }

  /** Pings one random failed member (Serf's reconnect): if it is back, the exchange that follows revives it. */
  private readonly reconnectTick = (): void => {
    if (!this.running) return
    const [peer] = this.randomMembers(1, m => m.state === 'failed')
    if (peer !== undefined && !this.leaving)
      this.env.send(peer, { v: 1, t: 'ping', seq: ++this.seq, updates: this.piggyback(peer) })
    this.reconnectTimer = this.env.setTimer(this.reconnectTick, this.c.reconnectIntervalMs)
  }

  private schedulePushPull(): void {
    if (!this.running) return
    const n = this.liveCount()
    // memberlist's pushPullScale: past 32 members, one more interval per doubling, so the cluster's total stays flat.
    const scale = n <= 32 ? 1 : Math.ceil(Math.log2(n) - Math.log2(32)) + 1
    this.pushPullTimer = this.env.setTimer(() => {
      const [peer] = this.randomMembers(1, m => m.state === 'alive')
      if (peer !== undefined && !this.leaving) this.sync(peer, 'periodic')
      this.schedulePushPull()
    }, this.c.pushPullIntervalMs * scale)
  }

  /** Up to n distinct random members matching `pick` (a partial Fisher-Yates over the candidates). */
  private randomMembers(n: number, pick: (m: SwimMember) => boolean): string[] {
    const c: string[] = []
    for (const m of this.members.values()) if (pick(m)) c.push(m.peer)
    const k = Math.min(n, c.length)
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.env.random() * (c.length - i))
      ;[c[i], c[j]] = [c[j], c[i]]
    }
    return c.slice(0, k)
  }
}
