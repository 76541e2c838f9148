// The allocator's side of the local fast path (./protocol.ts): what same-host proxies report of the requests they
// send its instances directly, folded into each instance's own in-flight count and last use, so that idle culling,
// drains, announced load and routing see them as if they had come over libp2p. A proxy learns that an instance takes
// no new request only at its next sync; until it says it applied that answer (its ack), the instance is held as busy
// (one request in flight), so that a drain or a cull waits for whatever it may still send.
import type { Answer, ListedInstance, Report } from './protocol.js'
import { REPORTER_TTL_MS } from './constants.js'

/** What the fast path needs of an instance (the allocator's Instance fits). */
export interface HostedInstance {
  id: string
  app: string
  state: string
  inFlight: number
  lastUsed: number
  rt?: { host: string; port: number }
  spec: { protocol: ListedInstance['protocol'] }
}

interface Reporter {
  at: number
  /** The seq of the last answer sent, and the instances it listed. */
  seq: number
  listed: Set<string>
  /** Instances the proxy may still send to: those of the answer it acked (and of later ones, see report()). */
  using: Set<string>
  /** What it reported in flight, per instance. */
  inFlight: Map<string, number>
  /** What is added to each instance's inFlight on its behalf. */
  applied: Map<string, number>
}

export class FastPathHost {
  private readonly reporters = new Map<string, Reporter>()
  private timer?: NodeJS.Timeout

  constructor(
    private readonly components: {
      peer: string
      instances: () => Iterable<HostedInstance>
      get: (id: string) => HostedInstance | undefined
      /** Shutting down: nothing takes new requests. */
      draining: () => boolean
    }
  ) {}

  start(): void {
    // Reporters that went away (a killed proxy) stop holding anything.
    this.timer = setInterval(() => {
      this.refresh()
    }, REPORTER_TTL_MS / 3)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    for (const r of this.reporters.values()) this.apply(r, new Map())
    this.reporters.clear()
  }

  /** Whether an instance takes new requests from a fast-path proxy. */
  private listable(i: HostedInstance): boolean {
    return i.state === 'ready' && i.rt !== undefined && !this.components.draining()
  }

  /** One sync of a proxy: its usage in, the instances that take new requests out. */
  report(body: Report): Answer {
    const now = Date.now()
    let r = this.reporters.get(body.proxy)
    if (r === undefined) {
      r = { at: now, seq: 0, listed: new Set(), using: new Set(), inFlight: new Map(), applied: new Map() }
      this.reporters.set(body.proxy, r)
    }
    r.at = now
    // It applied the last answer: it sends to those only. An older ack (a lost answer): it may use any of them.
    r.using = body.ack === r.seq ? r.listed : new Set([...r.using, ...r.listed])
    r.inFlight = new Map()
    for (const [id, u] of Object.entries(body.instances)) {
      const inst = this.components.get(id)
      if (inst === undefined) continue
      if (u.inFlight > 0) r.inFlight.set(id, u.inFlight)
      if (u.inFlight > 0 || u.begun > 0) inst.lastUsed = now
    }
    const instances: ListedInstance[] = []
    for (const i of this.components.instances())
      if (this.listable(i) && i.rt !== undefined)
        instances.push({ id: i.id, app: i.app, host: i.rt.host, port: i.rt.port, protocol: i.spec.protocol })
    r.seq++
    r.listed = new Set(instances.map(i => i.id))
    this.hold(r)
    return { v: 1, peer: this.components.peer, seq: r.seq, draining: this.components.draining(), instances }
  }

  /** Whether some same-host proxy may send this instance a request at any moment (it was listed to one). */
  mayBeUsed(id: string): boolean {
    for (const r of this.reporters.values()) if (r.listed.has(id) || r.using.has(id)) return true
    return false
  }

  /** After a change of the instances (one withdrawn, removed): the holds again; and reporters gone dropped. */
  refresh(): void {
    const now = Date.now()
    for (const [peer, r] of this.reporters) {
      if (now - r.at > REPORTER_TTL_MS) {
        this.apply(r, new Map())
        this.reporters.delete(peer)
      } else this.hold(r)
    }
  }

  /** What a reporter holds: what it said is in flight, plus one on each instance it may still use that takes none. */
  private hold(r: Reporter): void {
    const want = new Map(r.inFlight)
    for (const id of new Set([...r.using, ...r.listed])) {
      const inst = this.components.get(id)
      if (inst !== undefined && !this.listable(inst)) want.set(id, (want.get(id) ?? 0) + 1)
    }
    this.apply(r, want)
  }

  private apply(r: Reporter, want: Map<string, number>): void {
    for (const id of new Set([...r.applied.keys(), ...want.keys()])) {
      const delta = (want.get(id) ?? 0) - (r.applied.get(id) ?? 0)
      if (delta === 0) continue
      const inst = this.components.get(id)
      if (inst !== undefined) inst.inFlight = Math.max(0, inst.inFlight + delta)
      if ((want.get(id) ?? 0) === 0) r.applied.delete(id)
      else r.applied.set(id, want.get(id) as number)
    }
  }
}
