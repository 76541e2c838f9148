// The member table: the latest announcement of every peer and its state,
// alive → suspect → failed, or left after a graceful leave. Pure logic driven by
// announcements, probe results and a clock, so that it is testable on its own.
import { EventEmitter } from 'node:events'
import type { Announcement, Delta } from './announcement.js'
import { applyDelta } from './delta.js'
import type { Coordinate } from '../coordinate/index.js'

export type MemberStatus = 'alive' | 'suspect' | 'failed' | 'left'

export interface Member {
  announcement: Announcement
  status: MemberStatus
  /** When the status last changed (epoch ms). */
  statusSince: number
  /** Last sign of life: an announcement or a successful probe (epoch ms). */
  lastHeard: number
  /** Other members that reported this one suspect recently: reporter → when. */
  confirmations: Map<string, number>
  /** Its announcement came second-hand (a 'states' frame): the first first-hand one replaces it, whatever its seq. */
  relayed?: boolean
  /** Its Vivaldi network coordinate, when known: an RTT estimate without a probe. */
  coordinate?: Coordinate
}

export interface TableTiming {
  /**
   * The base of a suspect's wait before it is failed: twice this long without a sign of
   * life when nobody else confirms the suspicion, each confirmation from another member
   * shortening the wait (Lifeguard's rule) down to a third of it with three. A lone
   * observer that is itself slow thus needs long evidence, while a member that everyone
   * misses fails fast.
   */
  suspectTimeoutMs: number
  /** An alive member not heard from for this long becomes suspect. */
  silenceMs: number
  /** Failed and left members are dropped after this long. */
  forgetAfterMs: number
}

export interface TableEvents {
  change: [member: Member, previous: MemberStatus | undefined]
  forget: [peer: string]
}

export class MemberTable extends EventEmitter<TableEvents> {
  private readonly members = new Map<string, Member>()

  get(peer: string): Member | undefined {
    return this.members.get(peer)
  }
  list(): Member[] {
    return [...this.members.values()]
  }
  get size(): number {
    return this.members.size
  }

  private setStatus(m: Member, status: MemberStatus, now: number): void {
    if (m.status === status) return
    if (status === 'alive') m.confirmations.clear()
    const prev = m.status
    m.status = status
    m.statusSince = now
    this.emit('change', m, prev)
  }

  /** Applies an announcement; a seq not above the known one is stale and ignored. */
  apply(a: Announcement, now: number): 'new' | 'updated' | 'stale' {
    const m = this.members.get(a.peer)
    if (m === undefined) {
      const fresh: Member = {
        announcement: a,
        status: a.leaving === true ? 'left' : 'alive',
        statusSince: now,
        lastHeard: now,
        confirmations: new Map()
      }
      this.members.set(a.peer, fresh)
      this.emit('change', fresh, undefined)
      return 'new'
    }
    if (a.seq <= m.announcement.seq && m.relayed !== true) return 'stale'
    m.relayed = undefined
    m.announcement = a
    m.lastHeard = now
    if (a.leaving === true) this.setStatus(m, 'left', now)
    else if (m.status !== 'alive') this.setStatus(m, 'alive', now)
    else this.emit('change', m, 'alive')
    return 'updated'
  }

  /**
   * Applies a member's delta to the version held of it: 'updated' when it follows that version, 'stale' for one not
   * above it (a duplicate, or one overtaken by a full announcement), 'gap' when versions are missing in between and
   * 'unknown' for a member without an announcement: for those two, the caller asks the member for its full state.
   */
  applyDelta(d: Delta, now: number): 'updated' | 'stale' | 'gap' | 'unknown' {
    const m = this.members.get(d.peer)
    if (m === undefined) return 'unknown'
    if (d.seq <= m.announcement.seq) return 'stale'
    if (d.seq !== m.announcement.seq + 1) return 'gap'
    m.announcement = applyDelta(m.announcement, d)
    m.lastHeard = now
    this.emit('change', m, m.status)
    return 'updated'
  }

  /** A probe answered: the member is alive (a member that left stays left until it announces again). */
  heard(peer: string, now: number): void {
    const m = this.members.get(peer)
    if (m === undefined) return
    m.lastHeard = now
    if (m.status === 'suspect' || m.status === 'failed') this.setStatus(m, 'alive', now)
  }

  /** A probe went unanswered; true when that made the member suspect. */
  missed(peer: string, now: number): boolean {
    const m = this.members.get(peer)
    if (m?.status !== 'alive') return false
    this.setStatus(m, 'suspect', now)
    return true
  }

  /** Its connection closed and a redial was refused: the process is gone. */
  unreachable(peer: string, now: number): void {
    const m = this.members.get(peer)
    if (m !== undefined && (m.status === 'alive' || m.status === 'suspect')) this.setStatus(m, 'failed', now)
  }

  /**
   * Another member reports `peer` suspect. Only an alive member other than the suspect
   * counts: throwaway keys (anyone with the PSK can sign) must not hasten a verdict, nor
   * grow the map of a member that is not suspect.
   */
  confirm(peer: string, reporter: string, now: number): void {
    const m = this.members.get(peer)
    if (reporter === peer || this.members.get(reporter)?.status !== 'alive') return
    if (m !== undefined && (m.status === 'alive' || m.status === 'suspect')) m.confirmations.set(reporter, now)
  }

  /** How long a suspect may stay silent before it is failed, given the confirmations. */
  static suspectWait(t: Pick<TableTiming, 'suspectTimeoutMs'>, confirmations: number, expected = 3): number {
    // With nobody else to ask (a two-node cluster), the plain timeout applies.
    if (expected <= 0) return t.suspectTimeoutMs
    const max = 2 * t.suspectTimeoutMs
    const min = t.suspectTimeoutMs / 3
    const c = Math.min(confirmations, expected)
    return Math.max(min, max - ((max - min) * Math.log(c + 1)) / Math.log(expected + 1))
  }

  /** Advances timers: silence → suspect, suspect too long → failed, old failed/left → forgotten. */
  tick(now: number, t: TableTiming): void {
    for (const m of this.members.values()) {
      const silent = now - m.lastHeard
      if (m.status === 'alive' && silent > t.silenceMs) this.setStatus(m, 'suspect', now)
      if (m.status === 'suspect') {
        for (const [r, at] of m.confirmations) if (now - at > 10000) m.confirmations.delete(r)
        // Up to three other members can confirm; fewer in a small cluster.
        const expected = Math.min(3, this.members.size - 1)
        if (now - Math.max(m.statusSince, m.lastHeard) >= MemberTable.suspectWait(t, m.confirmations.size, expected))
          this.setStatus(m, 'failed', now)
      }
      if ((m.status === 'failed' || m.status === 'left') && now - m.statusSince > t.forgetAfterMs)
        this.forget(m.announcement.peer)
    }
  }

  /** A second-hand announcement (a newcomer's catch-up): taken only for a member not known yet. */
  applyRelayed(a: Announcement, now: number): boolean {
    if (this.members.has(a.peer)) return false
    this.apply(a, now)
    const m = this.members.get(a.peer)
    if (m !== undefined) m.relayed = true
    return true
  }

  /**
   * The failure detector's verdict (swim.ts), which rules the status once it has one: alive, suspect, failed, left.
   * An alive verdict is a sign of life too.
   */
  setState(peer: string, status: MemberStatus, now: number): void {
    const m = this.members.get(peer)
    if (m === undefined) return
    if (status === 'alive') m.lastHeard = now
    this.setStatus(m, status, now)
  }

  setCoordinate(peer: string, c: Coordinate): void {
    const m = this.members.get(peer)
    if (m !== undefined) m.coordinate = c
  }

  forget(peer: string): void {
    if (this.members.delete(peer)) this.emit('forget', peer)
  }
}
