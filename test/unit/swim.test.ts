// The SWIM failure detector (src/cluster/membership/swim.ts) on a fake clock and a fake
// network: probe and ack, indirect probes around a broken link, suspicion confirmed into
// failure, refutation, graceful leave, packet loss and a slow node that must not be failed,
// and Lifeguard's local health. A minute of cluster time runs in milliseconds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Swim, suspicionTimeout, type SwimConfig } from '../../src/cluster/membership/swim.js'
import type { MemberState, SwimMessage } from '../../src/cluster/membership/swim-protocol.js'

function rng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A discrete-event clock: timers run in time order, as run() advances. */
class Clock {
  t = 0
  private seq = 0
  private timers: Array<{ at: number; id: number; fn: () => void }> = []
  setTimer = (fn: () => void, ms: number): number => {
    const id = ++this.seq
    this.timers.push({ at: this.t + Math.max(0, ms), id, fn })
    return id
  }
  clearTimer = (id: unknown): void => {
    this.timers = this.timers.filter(x => x.id !== id)
  }
  run(ms: number): void {
    const end = this.t + ms
    for (;;) {
      let next: (typeof this.timers)[number] | undefined
      for (const x of this.timers)
        if (x.at <= end && (next === undefined || x.at < next.at || (x.at === next.at && x.id < next.id))) next = x
      if (next === undefined) break
      this.timers.splice(this.timers.indexOf(next), 1)
      this.t = next.at
      next.fn()
    }
    this.t = end
  }
}

interface NetOpts {
  /** One-way latency (ms) from → to. */
  latency?: (from: string, to: string) => number
  /** Probability that one message is lost. */
  loss?: number
  /** Links that drop everything from → to. */
  cut?: Set<string>
  /**
   * A pair that has not talked yet needs a dial first: its first messages wait this long (ms), and send() says they
   * waited (false), as the libp2p transport does. Unset: every pair is connected at once (and remembered as such).
   */
  dialMs?: number
}

/** A cluster of Swim instances on the fake clock and network. */
class Cluster {
  readonly clock = new Clock()
  readonly nodes = new Map<string, Swim>()
  readonly down = new Set<string>()
  readonly random = rng(Number(process.env.SWIM_SEED ?? 7))
  /** Extra delay (ms) on everything a node sends: a slow node. */
  readonly slowSend = new Map<string, number>()
  /** Extra delay (ms) on everything a node receives: its own event loop is late. */
  readonly slowReceive = new Map<string, number>()
  readonly changes: Array<{ at: number; observer: string; peer: string; state: MemberState }> = []
  sent = 0
  /** Pairs with a connection ("a|b", sorted), and when a dial in progress completes. */
  private readonly connected = new Set<string>()
  private readonly dialling = new Map<string, number>()

  constructor(
    readonly config: SwimConfig,
    readonly net: NetOpts = {}
  ) {}

  add(name: string, incarnation = 1): Swim {
    this.nodes.get(name)?.stop()
    const s = new Swim(
      {
        self: name,
        now: () => this.clock.t,
        setTimer: this.clock.setTimer,
        clearTimer: this.clock.clearTimer,
        random: this.random,
        addrs: () => [`/mem/${name}`],
        send: (to, msg) => this.deliver(name, to, msg)
      },
      this.config,
      { incarnation }
    )
    s.on('change', (m, prev) => {
      if (prev !== undefined) this.changes.push({ at: this.clock.t, observer: name, peer: m.peer, state: m.state })
    })
    this.nodes.set(name, s)
    s.start()
    return s
  }

  /** Sees every message sent, delivered or not. */
  tap?: (from: string, to: string, msg: SwimMessage) => void

  private deliver(from: string, to: string, msg: SwimMessage): boolean {
    this.sent++
    this.tap?.(from, to, msg)
    const pair = [from, to].sort().join('|')
    let dial = 0
    if (this.net.dialMs === undefined) this.connected.add(pair)
    else if (!this.connected.has(pair)) {
      let ready = this.dialling.get(pair)
      if (ready === undefined) {
        ready = this.clock.t + this.net.dialMs
        this.dialling.set(pair, ready)
        this.clock.setTimer(() => {
          this.dialling.delete(pair)
          this.connected.add(pair)
        }, this.net.dialMs)
      }
      dial = ready - this.clock.t
    }
    // What send() says: whether the message went out on an open connection, delivered or not.
    const open = dial === 0
    if (this.down.has(from)) return open
    if (this.net.cut?.has(`${from}>${to}`) === true) return open
    if ((this.net.loss ?? 0) > 0 && this.random() < (this.net.loss ?? 0)) return open
    const delay =
      dial + (this.net.latency?.(from, to) ?? 1) + (this.slowSend.get(from) ?? 0) + (this.slowReceive.get(to) ?? 0)
    // A copy, as a wire would make: no receiver shares objects with the sender.
    const copy = JSON.parse(JSON.stringify(msg)) as SwimMessage
    this.clock.setTimer(() => {
      if (!this.down.has(to)) this.nodes.get(to)?.receive(from, copy)
    }, delay)
    return open
  }

  /** Starts n nodes that join through the first. */
  static of(n: number, config: Partial<SwimConfig> = {}, net: NetOpts = {}): Cluster {
    const c = new Cluster({ probeIntervalMs: 1000, probeTimeoutMs: 500, suspicionMinMs: 500, ...config }, net)
    for (let i = 0; i < n; i++) {
      const s = c.add(`n${i}`)
      if (i > 0) s.join('n0')
    }
    return c
  }

  state(observer: string, peer: string): MemberState | undefined {
    return this.nodes.get(observer)?.get(peer)?.state
  }

  /** Observers (up, other than peer) whose view of peer is not `state`. */
  notYet(peer: string, state: MemberState): string[] {
    return [...this.nodes.keys()].filter(o => o !== peer && !this.down.has(o) && this.state(o, peer) !== state)
  }

  /** Advances until every live observer sees peer in `state`; returns the time it took (ms), or Infinity. */
  until(peer: string, state: MemberState, maxMs: number, stepMs = 50): number {
    const t0 = this.clock.t
    while (this.clock.t - t0 < maxMs) {
      if (this.notYet(peer, state).length === 0) return this.clock.t - t0
      this.clock.run(stepMs)
    }
    return this.notYet(peer, state).length === 0 ? this.clock.t - t0 : Infinity
  }

  failures(): typeof this.changes {
    return this.changes.filter(c => c.state === 'failed')
  }
}

test('ten nodes joining through one converge on a full alive view within a few seconds', () => {
  const c = Cluster.of(10)
  c.clock.run(3000)
  for (const [o] of c.nodes)
    for (const [p] of c.nodes) if (o !== p) assert.equal(c.state(o, p), 'alive', `${o} sees ${p}`)
})

test('a probe is answered: an RTT sample with the network latency and the peer coordinate', () => {
  const c = Cluster.of(2, {}, { latency: () => 7 })
  const samples: number[] = []
  c.nodes.get('n0')?.on('rtt', (_peer, ms) => samples.push(ms))
  c.clock.run(5000)
  assert.ok(samples.length >= 3, `${samples.length} samples`)
  assert.ok(
    samples.every(ms => ms === 14),
    `RTT is twice the one-way latency: ${samples.join(',')}`
  )
})

test('a newcomer whose every first probe waits for a dial longer than the probe timeout suspects nobody, and takes no RTT sample from a dialled probe', () => {
  const c = Cluster.of(12)
  c.clock.run(30000)
  // From now on a pair that never talked needs 1.5 s to connect (a noise handshake on a loaded host), more than the
  // protocol period of 1 s: only the newcomer's pairs are new.
  c.net.dialMs = 1500
  const samples: number[] = []
  const newcomer = c.add('new')
  newcomer.on('rtt', (_peer, ms) => samples.push(ms))
  newcomer.join('n0')
  c.clock.run(30000)
  assert.deepEqual(
    c.changes.filter(x => x.state !== 'alive'),
    [],
    'no member suspected by the newcomer, nor the newcomer by anyone'
  )
  assert.ok(samples.length >= 10, `${samples.length} samples`)
  assert.ok(
    samples.every(ms => ms === 2),
    `only round trips on open connections are samples: ${samples.join(',')}`
  )
  // A member that stops is still failed, by the newcomer too, once the suspicion has run its course.
  c.down.add('n5')
  assert.ok(
    c.until('n5', 'failed', 20000) < Infinity,
    `n5 failed on all: not yet on ${c.notYet('n5', 'failed').join(', ')}`
  )
})

test('the suspicion timeout falls from max to min with confirmations (Lifeguard)', () => {
  assert.equal(suspicionTimeout(0, 3, 500, 3000), 3000)
  assert.ok(suspicionTimeout(1, 3, 500, 3000) < 3000)
  assert.ok(suspicionTimeout(2, 3, 500, 3000) < suspicionTimeout(1, 3, 500, 3000))
  assert.equal(suspicionTimeout(3, 3, 500, 3000), 500)
  assert.equal(suspicionTimeout(9, 3, 500, 3000), 500)
  assert.equal(suspicionTimeout(0, 0, 500, 3000), 500, 'nobody to confirm: the least wait')
})

test('a broken link is bridged by indirect probes: the member behind it is never suspected', () => {
  const cut = new Set<string>()
  const c = Cluster.of(6, {}, { cut })
  c.clock.run(5000)
  cut.add('n0>n3').add('n3>n0')
  c.clock.run(60000)
  const about3 = c.changes.filter(x => x.peer === 'n3' && x.state !== 'alive')
  assert.deepEqual(about3, [], 'n3 never suspected')
  assert.equal(c.state('n0', 'n3'), 'alive')
  // Without helpers (indirect probes off), the same link gets n3 suspected by n0.
  const dcut = new Set<string>()
  const d = Cluster.of(6, { indirectChecks: 0 }, { cut: dcut })
  d.clock.run(5000)
  dcut.add('n0>n3').add('n3>n0')
  d.clock.run(60000)
  assert.ok(
    d.changes.some(x => x.observer === 'n0' && x.peer === 'n3' && x.state === 'suspect'),
    'without indirect probes n0 suspects n3'
  )
})

test('a stopped node is suspected, confirmed and failed on every other, within a few seconds', () => {
  const c = Cluster.of(10)
  c.clock.run(5000)
  c.down.add('n5')
  const took = c.until('n5', 'failed', 30000)
  assert.ok(took < 8000, `failed everywhere after ${took} ms`)
  // Every observer passed through suspect first: failure is a ripened suspicion, never a jump.
  for (const o of c.nodes.keys()) {
    if (o === 'n5') continue
    const seen = c.changes.filter(x => x.observer === o && x.peer === 'n5').map(x => x.state)
    assert.equal(seen.at(-1), 'failed', `${o}: ${seen.join(' → ')}`)
  }
  assert.ok(c.changes.some(x => x.peer === 'n5' && x.state === 'suspect'))
  // No one else was failed on the way.
  assert.deepEqual(
    c.failures().filter(x => x.peer !== 'n5'),
    []
  )
})

test('a false suspicion is refuted: a higher incarnation, alive on all, nobody failed', () => {
  const c = Cluster.of(8)
  c.clock.run(5000)
  const victim = c.nodes.get('n3') as Swim
  const inc = victim.selfIncarnation
  // One member claims n3 is suspect, as a slow observer might.
  c.nodes.get('n1')?.apply({ peer: 'n3', s: 'suspect', inc, by: 'n1' })
  c.clock.run(200)
  assert.ok(c.notYet('n3', 'alive').length > 0 || victim.selfIncarnation > inc, 'the suspicion spread or was refuted')
  c.clock.run(10000)
  assert.ok(victim.selfIncarnation > inc, `n3 refuted: incarnation ${inc} → ${victim.selfIncarnation}`)
  assert.deepEqual(c.notYet('n3', 'alive'), [])
  assert.deepEqual(c.failures(), [])
})

test('a graceful leave is seen as left by all, never as failed', () => {
  const c = Cluster.of(10)
  c.clock.run(5000)
  c.nodes.get('n4')?.leave()
  c.clock.run(50)
  c.down.add('n4')
  const took = c.until('n4', 'left', 5000, 10)
  assert.ok(took < 1500, `left everywhere after ${took} ms`)
  c.clock.run(20000)
  assert.deepEqual(c.notYet('n4', 'left'), [])
  assert.deepEqual(c.failures(), [])
})

test('10 % packet loss for two minutes: no member is ever failed, and a real failure is still found', () => {
  const c = Cluster.of(12, {}, { loss: 0.1, latency: () => 2 })
  c.clock.run(120000)
  assert.deepEqual(c.failures(), [], 'no false failures')
  c.down.add('n7')
  const took = c.until('n7', 'failed', 30000)
  const views = [...c.nodes.keys()].map(o => `${o}:${c.state(o, 'n7')}`).join(' ')
  assert.ok(
    took < 15000,
    views +
      ' n1 knows ' +
      (c.nodes
        .get('n1')
        ?.list()
        .map(m => m.peer + ':' + m.state)
        .join(',') ?? '') +
      `the stopped node failed everywhere after ${took} ms`
  )
})

test('a slow node (every answer 1.5× the probe timeout late) is never failed', () => {
  const c = Cluster.of(10, {}, { latency: () => 2 })
  c.slowSend.set('n2', 750)
  c.clock.run(120000)
  assert.deepEqual(
    c.failures().filter(x => x.peer === 'n2'),
    []
  )
  assert.deepEqual(c.notYet('n2', 'alive'), [])
})

test('local health: a node whose own event loop is late stretches its timeouts and fails no healthy member', () => {
  const c = Cluster.of(8, {}, { latency: () => 2 })
  c.clock.run(5000)
  // n6 handles what it receives 1.2 s late: it cannot tell its own slowness from its peers'.
  c.slowReceive.set('n6', 1200)
  let maxMultiplier = 1
  for (let i = 0; i < 600; i++) {
    c.clock.run(100)
    maxMultiplier = Math.max(maxMultiplier, c.nodes.get('n6')?.multiplier ?? 1)
  }
  assert.ok(maxMultiplier > 1, `its multiplier rose to ${maxMultiplier}`)
  // n6 itself answers 1.2 s late, beyond the 1 s period: the others may fail it. Its own suspicions of healthy
  // members, though, are refuted before they ripen: it fails none of them.
  assert.deepEqual(
    c.failures().filter(x => x.peer !== 'n6'),
    [],
    'no healthy member failed anywhere'
  )
  assert.ok(
    c.changes.some(x => x.observer === 'n6' && x.state === 'suspect'),
    'n6 did suspect healthy members (it cannot tell)'
  )
})

test('dissemination is bounded: an update rides at most λ·log N messages per node, then the queue is empty', () => {
  const c = Cluster.of(20)
  c.clock.run(20000)
  for (const s of c.nodes.values()) assert.equal(s.pending, 0, 'nothing left to disseminate at rest')
  const before = c.sent
  c.clock.run(10000)
  const perNodePerS = (c.sent - before) / 20 / 10
  // At rest: a ping and an ack per period per node, and a push-pull now and then.
  assert.ok(perNodePerS <= 2.5, `${perNodePerS.toFixed(2)} messages per node per second at rest`)
})

test('a failed member that restarts knowing nobody (it was the bootstrap) is found again and alive on all', () => {
  const c = Cluster.of(6)
  c.clock.run(5000)
  c.down.add('n0')
  assert.ok(c.until('n0', 'failed', 30000) < Infinity, 'failed first')
  // Long enough for the news of its failure to be disseminated and dropped: nothing goes its way by gossip.
  c.clock.run(20000)
  for (const s of c.nodes.values()) if (s.self !== 'n0') assert.equal(s.pending, 0)
  // A new process: a higher incarnation, an empty view, no bootstrap to join through.
  c.down.delete('n0')
  c.add('n0', 2)
  const took = c.until('n0', 'alive', 30000)
  assert.ok(took < 12000, `alive everywhere again after ${took} ms`)
  c.clock.run(5000)
  assert.equal(c.nodes.get('n0')?.list().length, 5, 'and it knows everyone again')
})

test("a push-pull names each member's announcement version: a receiver learns which it holds an older one of", () => {
  const clock = new Clock()
  const sent: Array<{ to: string; msg: SwimMessage }> = []
  const versions: Record<string, number> = { a: 7, b: 41 }
  const env = (self: string, send: (to: string, msg: SwimMessage) => void): ConstructorParameters<typeof Swim>[0] => ({
    self,
    now: () => clock.t,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    random: rng(3),
    addrs: () => [`/mem/${self}`],
    coordinate: () => ({ vec: [1, 2], error: 0.5, adjustment: 0, height: 0.01 }),
    version: peer => versions[peer],
    send
  })
  const a = new Swim(
    env('a', (to, msg) => sent.push({ to, msg })),
    { probeIntervalMs: 1000, probeTimeoutMs: 500, suspicionMinMs: 500 }
  )
  a.start()
  a.hint('b', ['/mem/b'])
  const c = new Swim(
    env('c', () => {}),
    { probeIntervalMs: 1000, probeTimeoutMs: 500, suspicionMinMs: 500 }
  )
  const seen: Array<[string, number]> = []
  c.on('version', (peer, v) => seen.push([peer, v]))
  c.start()
  // A join's push-pull carries coordinates and versions; c hears both members' versions.
  c.receive('a', { v: 1, t: 'sync', reply: false, join: true, members: a.snapshot(true) })
  assert.deepEqual(seen.sort(), [
    ['a', 7],
    ['b', 41]
  ])
  assert.ok(a.snapshot(true)[0].coord !== undefined, 'a join carries the coordinate')
  // A periodic one goes without coordinates (they travel with acks), and a ping never carries one.
  assert.ok(a.snapshot(false).every(u => u.coord === undefined && u.ver !== undefined))
  clock.run(5000)
  const pings = sent.filter(s => s.msg.t === 'ping')
  assert.ok(pings.length > 0)
  assert.ok(
    pings.every(p => (p.msg as { coord?: unknown }).coord === undefined),
    'pings without coordinate'
  )
  a.stop()
  c.stop()
})

test('100 nodes at the default timings: a join is seen by all within 1 s, a stopped node failed on all within about 3 s', t => {
  // Membership's defaults (src/config/defaults.ts, membership.ts): 500 ms period and probe timeout, least suspicion
  // wait ⅔ of SuspectTimeoutMs (1,500 ms); 1 ms one-way latency.
  const c = Cluster.of(100, { probeIntervalMs: 500, probeTimeoutMs: 500, suspicionMinMs: 1000 })
  c.clock.run(20000)
  for (const o of c.nodes.keys()) assert.deepEqual(c.notYet(o, 'alive'), [], `${o} alive on all`)
  const joiner = c.add('late')
  joiner.join('n17')
  const joinMs = c.until('late', 'alive', 5000, 10)
  assert.ok(joinMs <= 1000, `join seen by all after ${joinMs} ms`)
  c.clock.run(5000)
  // One member at a time stops answering (SIGSTOP: its connections stay open), then the next.
  const victims = ['n33', 'n66', 'n99', 'n12', 'n45', 'n78', 'n5', 'n90', 'n50']
  const took: number[] = []
  for (const v of victims) {
    c.down.add(v)
    took.push(c.until(v, 'failed', 30000, 10))
    c.clock.run(2000)
  }
  took.sort((a, b) => a - b)
  t.diagnostic(`join seen by all after ${joinMs} ms; stopped members failed on all after ${took.join(', ')} ms`)
  // How soon the first probe reaches the stopped member is chance (about two a second reach any member, whatever N), so
  // the median is held to 3 s and the slowest to 5 s. Before the early conclusion on nacks, the suspicion's own probes
  // and the newcomers' place in the probe round: median 3.8 s, slowest 6 s (seed 7).
  assert.ok(
    took[victims.length >> 1] <= 3000 && took[victims.length - 1] <= 5000,
    `failed on all after ${took.join(', ')} ms`
  )
  assert.deepEqual(
    // (A stopped member, which hears nobody, fails everyone in its own view: that view is not asked for.)
    c.failures().filter(x => !victims.includes(x.peer) && !victims.includes(x.observer)),
    [],
    'nobody else failed'
  )
})

test('a periodic push-pull is a digest: agreeing views exchange one short frame, a differing one the full states', () => {
  const c = Cluster.of(12, { pushPullIntervalMs: 2000 })
  c.clock.run(20000)
  const syncs: Array<{ from: string; to: string; msg: Extract<SwimMessage, { t: 'sync' }> }> = []
  c.tap = (from, to, msg) => {
    if (msg.t === 'sync') syncs.push({ from, to, msg })
  }
  c.clock.run(20000)
  // At rest: ~12 × 10 periodic syncs, each the sender's own entry and a digest, and no answers.
  assert.ok(syncs.length >= 60, `${syncs.length} syncs`)
  assert.ok(
    syncs.every(x => x.msg.digest !== undefined && x.msg.members.length === 1 && x.msg.members[0].peer === x.from),
    'digest syncs only'
  )
  const digests = new Set([...c.nodes.values()].map(n => n.viewDigest()))
  assert.equal(digests.size, 1, 'every view has the same digest')
  // A view that differs (a member n4 has not heard of yet): the receiver answers in full and asks for the sender's.
  syncs.length = 0
  const stranger = c.add('x')
  c.nodes.get('n4')?.receive('x', { v: 1, t: 'sync', reply: true, digest: '0123456789abcdef', members: [] })
  c.clock.run(50)
  const toX = syncs.find(x => x.from === 'n4' && x.to === 'x')
  assert.ok(toX !== undefined && toX.msg.digest === undefined && toX.msg.reply, 'n4 answers in full and asks')
  assert.equal(toX.msg.members.length, 12, 'n4 sends every member (itself included)')
  const back = syncs.find(x => x.from === 'x' && x.to === 'n4')
  assert.ok(back !== undefined && !back.msg.reply && back.msg.digest === undefined, 'x answers in full')
  assert.equal(stranger.get('n7')?.state, 'alive', 'x learned the cluster from the full answer')
  // An older peer's sync (no digest) still gets the full answer.
  syncs.length = 0
  c.nodes.get('n5')?.receive('n6', { v: 1, t: 'sync', reply: true, members: [] })
  c.clock.run(50)
  assert.ok(syncs.some(x => x.from === 'n5' && x.to === 'n6' && x.msg.members.length > 1))
})

test('a newcomer whose join goes unanswered asks again less and less often; a seed answers a burst of joins once', () => {
  const c = Cluster.of(3)
  c.clock.run(5000)
  c.down.add('n0')
  const joins: number[] = []
  c.tap = (from, to, msg) => {
    if (from === 'x' && to === 'n0' && msg.t === 'sync' && msg.join === true) joins.push(c.clock.t)
  }
  const x = c.add('x')
  x.join('n0')
  c.clock.run(60000)
  // Every protocol period (1 s here) would be 60; doubling from 2 s up to 30 s: 0, 2, 6, 14, 30 s (+ a period each).
  assert.ok(joins.length >= 4 && joins.length <= 7, `${joins.length} joins in a minute: ${joins.join(', ')}`)
  const gaps = joins.slice(1).map((t, i) => t - joins[i])
  assert.ok(
    gaps.every((g, i) => i === 0 || g >= gaps[i - 1]),
    `growing gaps: ${gaps.join(', ')}`
  )
  // The seed comes back and gets ten joins at once (queued while a stream opened): one answer, one 'joined'.
  c.down.delete('n0')
  const n0 = c.nodes.get('n0')
  let joined = 0
  n0?.on('joined', () => joined++)
  let answers = 0
  c.tap = (from, to, msg) => {
    if (from === 'n0' && to === 'y' && msg.t === 'sync') answers++
  }
  const y = c.add('y')
  for (let i = 0; i < 10; i++) n0?.receive('y', { v: 1, t: 'sync', reply: true, join: true, members: y.snapshot(true) })
  c.clock.run(10)
  assert.equal(answers, 1, 'one answer to the burst')
  assert.equal(joined, 1, "one 'joined' (one 'states' frame)")
})
