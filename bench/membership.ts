// Membership benchmark: N physarum nodes on 127.0.0.1 (BENCH_NODES, 20 by default; several
// sizes in one run as BENCH_NODES=20,50,100, a table each) — join seen by all, SIGKILL and
// SIGSTOP seen as failed by all, bytes and CPU per node at rest, false failures during a soak
// (BENCH_SOAK_S, 60 s by default; 600 for the issue's 10-minute soak), the accuracy of the
// network coordinates to nodes behind TCP delay relays — and the same with N HashiCorp serf
// agents when installed (apt-get install serf; BENCH_SERF=0 leaves it out), size by size.
//
// Sizes below BENCH_INPROCESS (100 by default) run as real daemon processes (bin/physarum
// allocator); sizes at or above it as an in-process cluster: N real libp2p nodes (the Agent
// class, default config) in this one Node.js process, since a machine of 2 cores does not hold
// 100 daemons (~0.6 % of a core each at rest, and far more while they join). The table says
// which ("processes" / "in-process"). In-process, SIGKILL is agent.stop() without a leave, and
// SIGSTOP / SIGCONT freeze and thaw the one TCP relay through which that node is reached (its
// connections stay open and nothing passes); its CPU is this process's, divided by N.
//
// Coordinates (physarum only): after the failures, four more nodes join, each reachable only
// through a relay that adds 6, 10, 20 or 40 ms of RTT (inbound-only agents in this process;
// one more in-process agent introduces them). For every pair (member, far node) the member's
// estimate from the coordinates (as `physarum rtt` computes it from its member view) is
// compared with the RTT measured over libp2p (the RTT protocol, median of 5 probes) until
// ≥ 90 % of the pairs are within 25 % or 1 ms, or BENCH_COORD_S (120 s by default) passes.
//
// Runs inside a network namespace of its own when it can, so that the loopback byte
// counters belong to the cluster under test alone.
import '../src/util/polyfill.js'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, openSync, readSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { Agent, type MemberView } from '../src/cluster/agent.js'
import { builtinDefaults } from '../src/config/defaults.js'
import type { Config } from '../src/config/schema.js'
import { estimateRttMs } from '../src/cluster/coordinate/index.js'
import { reservePort } from '../src/allocator/runtime/process.js'
import { silentLogger } from '../src/util/log.js'
import { delayRelay, type DelayRelay } from '../test/helpers/delay-relay.js'
import { ROOT, fmt, machine, median, percentile, saveResult } from './lib.js'

/** Cluster sizes to run, one after the other: BENCH_NODES=20 or BENCH_NODES=20,50,100. */
const SIZES = (process.env.BENCH_NODES ?? '20')
  .split(',')
  .map(s => Number(s.trim()))
  .filter(n => Number.isInteger(n) && n >= 8)
/** Sizes at or above this run in-process (one Node.js process, N libp2p nodes); below it as processes. */
const INPROCESS = Number(process.env.BENCH_INPROCESS ?? 100)
/** In-process nodes start in batches of this many while the cluster forms (a pause after each: ClusterAdapter.form). */
const FORM_BATCH = 5
const JOINS = Number(process.env.BENCH_JOINS ?? 5)
const SOAK_S = Number(process.env.BENCH_SOAK_S ?? 60)
/** The longest wait for the coordinates to settle (s). */
const COORD_S = Number(process.env.BENCH_COORD_S ?? 120)
const REST_S = 20
/**
 * The bytes at rest are counted from this long after the last join (ms): a newcomer announces itself in full a few
 * times in its first minute (membership.ts JOIN_FULL_MS), which is joining, not rest.
 */
const REST_AFTER_JOIN_MS = 65000
/** Which nodes the failure scenario kills and stops (indices among the nodes started). */
const KILLED = 3
const STOPPED = 5
const PSK_TEXT = 'physarum benchmark cluster'
/** RTT (ms) each far node's relay adds: half of it each way. */
const FAR_RTT_MS = [6, 10, 20, 40]
/** An estimate is good within this fraction of the measured RTT, or within COORD_ABS_MS. */
const COORD_REL = 0.25
const COORD_ABS_MS = 1
const COORD_TARGET = 0.9
const PROBES_PER_PAIR = 5
/** Resolution of the event-loop delay monitor (ms): its samples are whole intervals, this much more than the delay. */
const LAG_RES_MS = 10

/** Median event-loop delay (ms) a monitor saw. */
function lagMs(h: IntervalHistogram): number {
  return Math.max(0, h.percentile(50) / 1e6 - LAG_RES_MS)
}

/** CPU seconds (user + system) a process has used, from /proc; 0 when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    // Fields 14 and 15 (utime, stime) in clock ticks; they are 12 and 13 after the command name.
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return 0
  }
}

function loTxBytes(): number | undefined {
  try {
    return Number(readFileSync('/sys/class/net/lo/statistics/tx_bytes', 'utf8'))
  } catch {
    return undefined
  }
}

type Change = 'join' | 'leave' | 'fail' | 'suspect'
type Mode = 'processes' | 'in-process'

/** One cluster under test, as the scenario sees it: nodes by index, changes as each node logged them. */
interface ClusterAdapter {
  /** Starts node i (joining through an earlier node); resolves with the time its join is measured from. */
  start: (i: number) => Promise<number>
  /** The latest time at which every observer logged `change` for node i at or after `after`. */
  seenByAll: (observers: number[], i: number, change: Change, after: number) => number | undefined
  /**
   * Changes logged since `since`, by kind (for false alarms during the soak); undefined when the tool does not log that
   * kind.
   */
  count: (change: Change, since: number) => number | undefined
  /** SIGKILL, SIGSTOP, SIGCONT, or the leave signal, to node i (or what stands for it in-process). */
  signal: (i: number, sig: NodeJS.Signals) => void
  /** CPU seconds used so far by the running nodes, and how many they are. */
  cpu: () => { seconds: number; nodes: number }
  /** The signal on which a node leaves gracefully. */
  leaveSignal: NodeJS.Signals
  /**
   * In-process: a pause (ms) after every FORM_BATCH nodes started while the cluster forms, as a fleet's hosts come up,
   * and how long forming may take: one event loop does every node's noise handshakes and joins.
   */
  form?: { pauseMs: number; timeoutMs: number }
  close: () => Promise<void>
  /** How the observers see node i now, for an error message. */
  describe?: (observers: number[], i: number) => string
  /** physarum only: what the coordinate phase needs. */
  physarum?: {
    /** Node i's member view, as `physarum members --json` shows it (coordinates included). */
    view: (i: number) => Promise<MemberView[]>
    peer: (i: number) => string
    /** Node i's full multiaddr, to join through. */
    addr: (i: number) => string
  }
}

async function waitAll(
  c: ClusterAdapter,
  observers: number[],
  i: number,
  change: Change,
  after: number,
  timeoutMs = 60000
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const t = c.seenByAll(observers, i, change, after)
    if (t !== undefined) return t
    await sleep(20)
  }
  const saw = observers.filter(o => c.seenByAll([o], i, change, after) !== undefined).length
  throw new Error(
    `${saw} of ${observers.length} nodes saw node ${i} ${change} within ${timeoutMs} ms${c.describe !== undefined ? ` (its status on them: ${c.describe(observers, i)})` : ''}`
  )
}

/** Changes as the nodes logged them, indexed by (observer, subject, change): lookups stay cheap at 100 nodes. */
class EventLog {
  private readonly byKey = new Map<string, number[]>()
  private readonly byChange = new Map<Change, number[]>()

  add(t: number, node: number, change: Change, subject: string): void {
    const k = `${node} ${subject} ${change}`
    let l = this.byKey.get(k)
    if (l === undefined) this.byKey.set(k, (l = []))
    l.push(t)
    let c = this.byChange.get(change)
    if (c === undefined) this.byChange.set(change, (c = []))
    c.push(t)
  }

  /** The latest of the observers' first `change` of `subject` at or after `after` (5 ms of clock slack). */
  latest(observers: number[], subject: string, change: Change, after: number): number | undefined {
    let t = 0
    for (const o of observers) {
      const e = this.byKey.get(`${o} ${subject} ${change}`)?.find(x => x >= after - 5)
      if (e === undefined) return undefined
      t = Math.max(t, e)
    }
    return t
  }

  count(change: Change, since: number): number {
    return (this.byChange.get(change) ?? []).filter(t => t >= since).length
  }
}

const KINDS: Record<string, Change> = { alive: 'join', left: 'leave', failed: 'fail', suspect: 'suspect' }

/** N physarum allocators, real processes, read through their JSON logs. */
function physarumCluster(N: number): ClusterAdapter {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-'))
  const conf = join(dir, 'conf.json')
  writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Log: { Format: 'json' } }))
  const events = new EventLog()
  const procs: ChildProcess[] = []
  const peers: string[] = []
  const addrs: string[] = []
  const admins: string[] = []
  return {
    leaveSignal: 'SIGTERM',
    start: async i => {
      // The first N-1 join through node 0 (as serf's agents do); the measured joiners through others in turn.
      const boot = i === 0 ? [] : ['--bootstrap', i < N - 1 ? addrs[0] : addrs[(i - (N - 1)) % (N - 1)]]
      const p = spawn(
        process.execPath,
        [
          join(ROOT, 'bin/physarum'),
          'allocator',
          '--configfile',
          conf,
          '--ephemeral',
          '--admin',
          '127.0.0.1:0',
          ...boot
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PHYSARUM_PSK: PSK_TEXT } }
      )
      procs[i] = p
      return await new Promise<number>((resolve, reject) => {
        let startedAt = 0
        p.once('exit', code => {
          reject(new Error(`node ${i} exited (${code}) before it listened`))
        })
        createInterface({ input: p.stderr as NodeJS.ReadableStream }).on('line', line => {
          let j: { message?: string; timestamp?: string; peer?: string; admin?: string }
          try {
            j = JSON.parse(line)
          } catch {
            return
          }
          const t = Date.parse(j.timestamp ?? '')
          const m = /^member \S+ is (\w+)$/.exec(j.message ?? '')
          if (m !== null && j.peer !== undefined && KINDS[m[1]] !== undefined) events.add(t, i, KINDS[m[1]], j.peer)
          const s = /^allocator (\w+) started$/.exec(j.message ?? '')
          if (s !== null) {
            peers[i] = s[1]
            admins[i] = j.admin ?? ''
            startedAt = t
          }
          const l = /^listening on (\/ip4\/127\.0\.0\.1\/\S+)$/.exec(j.message ?? '')
          if (l !== null) {
            addrs[i] = l[1]
            resolve(startedAt)
          }
        })
      })
    },
    seenByAll: (observers, i, change, after) => events.latest(observers, peers[i], change, after),
    count: (change, since) => events.count(change, since),
    signal: (i, sig) => {
      procs[i].kill(sig)
    },
    cpu: () => {
      const pids = procs.filter(p => p.exitCode === null && p.signalCode === null).map(p => p.pid as number)
      return { seconds: pids.reduce((t, p) => t + cpuSeconds(p), 0), nodes: pids.length }
    },
    physarum: {
      view: async i => {
        // Once more on a socket error: the admin API may close an idle keep-alive connection as fetch reuses it.
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await fetch(`http://${admins[i]}/v1/members`, { signal: AbortSignal.timeout(5000) })
            return (await r.json()) as MemberView[]
          } catch (err) {
            if (attempt > 0) throw err
          }
        }
      },
      peer: i => peers[i],
      addr: i => addrs[i]
    },
    close: async () => {
      await Promise.all(
        procs.map(async p => {
          if (p.exitCode !== null || p.signalCode !== null) return
          const exited = new Promise(resolve => p.once('exit', resolve))
          p.kill('SIGCONT')
          p.kill('SIGTERM')
          const t = setTimeout(() => p.kill('SIGKILL'), 5000)
          await exited
          clearTimeout(t)
        })
      )
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** A bench node's config: the built-in defaults (as a daemon runs them), on 127.0.0.1, in the benchmark's network. */
function nodeConfig(over: Partial<Config> = {}): Config {
  return { ...builtinDefaults(), Listen: ['/ip4/127.0.0.1/tcp/0'], Psk: PSK_TEXT, ...over }
}

/** An agent reachable only through a relay adding `rttMs` (half each way); it never dials out, so others find it. */
async function relayedAgent(rttMs: number): Promise<{ agent: Agent; relay: DelayRelay; addr: string }> {
  const port = await reservePort()
  const relay = await delayRelay(port, rttMs / 2)
  const announce = `/ip4/127.0.0.1/tcp/${relay.port}`
  try {
    const agent = await Agent.start({
      role: 'allocator',
      config: nodeConfig({ Listen: [`/ip4/127.0.0.1/tcp/${port}`], Announce: [announce] }),
      log: silentLogger,
      ephemeral: true,
      admin: false,
      inboundOnly: true
    })
    return { agent, relay, addr: `${announce}/p2p/${agent.peer}` }
  } catch (err) {
    await relay.close()
    throw err
  }
}

function fullAddr(a: Agent): string {
  const m = a.node
    .getMultiaddrs()
    .map(x => x.toString())
    .find(x => x.startsWith('/ip4/127.0.0.1/'))
  if (m === undefined) throw new Error(`agent ${a.peer} has no address on 127.0.0.1`)
  return m.includes('/p2p/') ? m : `${m}/p2p/${a.peer}`
}

/**
 * N physarum agents in this process, each a real libp2p node with the default config, their changes read from their
 * member tables. Node STOPPED is reached only through a relay, so that freezing the relay stands for SIGSTOP.
 */
function inProcessCluster(N: number): ClusterAdapter {
  const events = new EventLog()
  const agents: Agent[] = []
  const relays: DelayRelay[] = []
  let frozen: { relay: DelayRelay; addr: string } | undefined
  /** Per node, when its start was called: its join may be seen before Agent.start resolves. */
  const calledAt: number[] = []
  const startedAt: number[] = []
  const cpu0 = process.cpuUsage()
  const record = (i: number, a: Agent): void => {
    // What it learnt while it started, before this listener (its bootstrap, seen alive), at the time it learnt it.
    for (const m of a.membership.table.list()) {
      const k = KINDS[m.status]
      if (k !== undefined) events.add(m.statusSince, i, k, m.announcement.peer)
    }
    a.membership.table.on('change', (m, prev) => {
      const k = KINDS[m.status]
      if (prev !== m.status && k !== undefined) events.add(Date.now(), i, k, m.announcement.peer)
    })
  }
  const down = new Set<number>()
  const stop = (i: number, leave: boolean): void => {
    const a = agents[i]
    down.add(i)
    void (async () => {
      if (leave) await a.beforeStop()
      await a.stop()
    })()
  }
  return {
    leaveSignal: 'SIGTERM',
    form: { pauseMs: 1000, timeoutMs: 300000 },
    start: async i => {
      calledAt[i] = Date.now()
      let a: Agent
      if (i === STOPPED) {
        const r = await relayedAgent(0)
        relays.push(r.relay)
        frozen = { relay: r.relay, addr: r.addr }
        a = r.agent
      } else {
        // The first N-1 join through node 0, the measured joiners through others in turn; the node after the
        // relayed one also through it (it cannot dial anyone: someone has to dial it).
        const through = i === 0 ? [] : [i < N - 1 ? fullAddr(agents[0]) : fullAddr(agents[(i - (N - 1)) % (N - 1)])]
        if (i === STOPPED + 1 && frozen !== undefined) through.push(frozen.addr)
        a = await Agent.start({
          role: 'allocator',
          config: nodeConfig({ Bootstraps: through }),
          log: silentLogger,
          ephemeral: true,
          admin: false
        })
      }
      agents[i] = a
      record(i, a)
      startedAt[i] = Date.now()
      return startedAt[i]
    },
    seenByAll: (observers, i, change, after) =>
      events.latest(observers, agents[i].peer, change, after === startedAt[i] ? calledAt[i] : after),
    describe: (observers, i) => {
      const n: Record<string, number> = {}
      for (const o of observers) {
        const st = `${agents[o].membership.table.get(agents[i].peer)?.status ?? 'unknown'}`
        n[st] = (n[st] ?? 0) + 1
      }
      return JSON.stringify(n)
    },
    count: (change, since) => events.count(change, since),
    signal: (i, sig) => {
      if (sig === 'SIGKILL') stop(i, false)
      else if (sig === 'SIGTERM') stop(i, true)
      else if (sig === 'SIGSTOP' && i === STOPPED) frozen?.relay.freeze()
      else if (sig === 'SIGCONT' && i === STOPPED) frozen?.relay.thaw()
      else throw new Error(`in-process: no ${sig} for node ${i}`)
    },
    cpu: () => {
      const u = process.cpuUsage(cpu0)
      return { seconds: (u.user + u.system) / 1e6, nodes: agents.length - down.size }
    },
    physarum: {
      view: async i => await Promise.resolve(agents[i].view()),
      peer: i => agents[i].peer,
      addr: i => fullAddr(agents[i])
    },
    close: async () => {
      for (const r of relays) r.thaw()
      await Promise.all(agents.map(async a => await a.stop()))
      await Promise.all(relays.map(async r => await r.close()))
    }
  }
}

/** Reads a file's new lines since the last call. */
function tail(file: string): () => string[] {
  let offset = 0
  let rest = ''
  return () => {
    const fd = openSync(file, 'r')
    try {
      const buf = Buffer.alloc(1 << 16)
      let n: number
      while ((n = readSync(fd, buf, 0, buf.length, offset)) > 0) {
        offset += n
        rest += buf.subarray(0, n).toString()
      }
    } finally {
      closeSync(fd)
    }
    const lines = rest.split('\n')
    rest = lines.pop() ?? ''
    return lines.filter(Boolean)
  }
}

/** N HashiCorp serf agents; an event handler logs each change with a nanosecond clock. */
function serfCluster(): ClusterAdapter {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-serf-'))
  const log = join(dir, 'events.log')
  const handler = join(dir, 'handler.sh')
  writeFileSync(
    handler,
    `#!/bin/sh\nnow=$(date +%s%N)\nwhile read -r name rest; do echo "$now $SERF_SELF_NAME $SERF_EVENT $name" >> ${log}; done\n`
  )
  chmodSync(handler, 0o755)
  writeFileSync(log, '')
  const procs: ChildProcess[] = []
  const kinds: Record<string, Change> = { 'member-join': 'join', 'member-leave': 'leave', 'member-failed': 'fail' }
  const events = new EventLog()
  const read = tail(log)
  const update = (): EventLog => {
    for (const l of read()) {
      const [ns, self, event, name] = l.split(' ')
      if (kinds[event] !== undefined)
        events.add(Number(BigInt(ns) / 1000000n), Number(self.slice(1)), kinds[event], name)
    }
    return events
  }
  return {
    leaveSignal: 'SIGINT', // serf leaves gracefully on SIGINT; SIGTERM does not leave by default
    start: async i => {
      const t = Date.now()
      procs[i] = spawn(
        'serf',
        [
          'agent',
          `-node=n${i}`,
          `-bind=127.0.0.1:${17946 + i}`,
          `-rpc-addr=127.0.0.1:${27373 + i}`,
          '-log-level=err',
          `-event-handler=member-join,member-leave,member-failed=${handler}`,
          ...(i > 0 ? ['-join=127.0.0.1:17946'] : [])
        ],
        { stdio: 'ignore' }
      )
      await sleep(i === 0 ? 300 : 30)
      return t
    },
    seenByAll: (observers, i, change, after) => update().latest(observers, `n${i}`, change, after),
    count: (change, since) => (change === 'suspect' ? undefined : update().count(change, since)),
    signal: (i, sig) => {
      procs[i].kill(sig)
    },
    cpu: () => {
      const pids = procs.filter(p => p.exitCode === null && p.signalCode === null).map(p => p.pid as number)
      return { seconds: pids.reduce((t, p) => t + cpuSeconds(p), 0), nodes: pids.length }
    },
    close: async () => {
      for (const p of procs) {
        try {
          p.kill('SIGCONT')
          p.kill('SIGKILL')
        } catch {}
      }
      await sleep(200)
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

interface CoordResult {
  /** Also withinPct_6ms and so on: the fraction within, per far node. */
  [k: string]: number
  pairs: number
  measured: number
  within: number
  fraction: number
  medianErrMs: number
  p90ErrMs: number
  medianErrPct: number
  settledS: number
  lagMs: number
}

/** Median of `n` RTT probes from `from` to `peer` (ms), over libp2p. */
async function measured(from: Agent, peer: string, n = PROBES_PER_PAIR): Promise<number> {
  const id = peerIdFromString(peer)
  const xs: number[] = []
  for (let k = 0; k < n; k++) xs.push(await from.rtt.probe(id, 2000))
  return median(xs)
}

/**
 * Four far nodes join behind their delay relays; every observer's coordinate estimate to each is compared with the RTT
 * measured to it, until the target fraction of pairs is within tolerance (or COORD_S passes), then once more afresh.
 */
async function coordinates(c: ClusterAdapter, observers: number[]): Promise<CoordResult> {
  const ph = c.physarum as NonNullable<ClusterAdapter['physarum']>
  const lag = monitorEventLoopDelay({ resolution: LAG_RES_MS })
  lag.enable()
  const far: Array<{ agent: Agent; relay: DelayRelay; addr: string }> = []
  let introducer: Agent | undefined
  try {
    for (const ms of FAR_RTT_MS) far.push(await relayedAgent(ms))
    // They cannot dial anyone: an extra node dials them and the cluster learns of them from it.
    introducer = await Agent.start({
      role: 'allocator',
      config: nodeConfig({ Bootstraps: [ph.addr(observers[0]), ...far.map(f => f.addr)] }),
      log: silentLogger,
      ephemeral: true,
      admin: false
    })
    const farPeers = far.map(f => f.agent.peer)
    const views = async (): Promise<MemberView[][]> => await Promise.all(observers.map(async o => await ph.view(o)))
    const t0 = Date.now()
    const deadline = t0 + COORD_S * 1000
    const rtt = new Map<string, number>()
    const key = (o: number, f: number): string => `${o} ${f}`
    /** Measures the pairs not measured yet (all when `again`), a few at a time: the far node must be connected. */
    const measureAll = async (again: boolean): Promise<void> => {
      const todo = observers.flatMap(o => far.map((_, f) => ({ o, f }))).filter(p => again || !rtt.has(key(p.o, p.f)))
      for (let k = 0; k < todo.length; k += 8)
        await Promise.all(
          todo.slice(k, k + 8).map(async ({ o, f }) => {
            try {
              rtt.set(key(o, f), await measured(far[f].agent, ph.peer(o)))
            } catch {}
          })
        )
    }
    const judge = async (): Promise<{
      within: number
      errs: number[]
      pcts: number[]
      fractions: Record<string, number>
      byFar: string[]
    }> => {
      const vs = await views()
      let within = 0
      const byFar = far.map(() => ({ within: 0, of: 0, est: [] as number[], rtt: [] as number[] }))
      const errs: number[] = []
      const pcts: number[] = []
      vs.forEach((v, k) => {
        const self = v.find(m => m.self)?.coordinate
        far.forEach((_, f) => {
          const m = rtt.get(key(observers[k], f))
          const fc = v.find(x => x.peer === farPeers[f])?.coordinate
          if (m === undefined || self === null || self === undefined || fc === null || fc === undefined) return
          const est = estimateRttMs(self, fc)
          const err = Math.abs(est - m)
          errs.push(err)
          pcts.push((100 * err) / m)
          byFar[f].of++
          byFar[f].est.push(est)
          byFar[f].rtt.push(m)
          if (err <= Math.max(COORD_ABS_MS, COORD_REL * m)) {
            within++
            byFar[f].within++
          }
        })
      })
      return {
        within,
        errs,
        pcts,
        fractions: Object.fromEntries(byFar.map((b, f) => [`withinPct_${FAR_RTT_MS[f]}ms`, (100 * b.within) / b.of])),
        byFar: byFar.map(
          (b, f) =>
            `+${FAR_RTT_MS[f]} ms: ${b.within}/${b.of} within, measured ${fmt(median(b.rtt), 1)}, estimated ${fmt(median(b.est), 1)}`
        )
      }
    }
    const pairs = observers.length * far.length
    let settledAt: number | undefined
    while (Date.now() < deadline) {
      await measureAll(false)
      const j = await judge()
      if (j.within >= COORD_TARGET * pairs) {
        settledAt = Date.now()
        break
      }
      await sleep(2000)
    }
    // Afresh: the RTTs measured again now, not those of the first minute.
    await measureAll(true)
    const j = await judge()
    process.stderr.write(
      `coordinates: ${j.within}/${pairs} within, settled ${settledAt !== undefined ? `after ${(settledAt - t0) / 1000} s` : 'never'} (${j.byFar.join('; ')})\n`
    )
    return {
      pairs,
      measured: j.errs.length,
      within: j.within,
      fraction: j.within / pairs,
      medianErrMs: median(j.errs),
      p90ErrMs: percentile(j.errs, 90),
      medianErrPct: median(j.pcts),
      settledS: settledAt !== undefined ? (settledAt - t0) / 1000 : NaN,
      lagMs: lagMs(lag),
      ...j.fractions
    }
  } finally {
    lag.disable()
    await introducer?.stop()
    await Promise.all(far.map(async f => await f.agent.stop()))
    await Promise.all(far.map(async f => await f.relay.close()))
  }
}

/** The same scenario for any cluster: form, joins, a soak at rest, SIGKILL, SIGSTOP, SIGCONT, then coordinates. */
async function scenario(c: ClusterAdapter, N: number): Promise<Record<string, number>> {
  const lag = monitorEventLoopDelay({ resolution: LAG_RES_MS })
  try {
    const base = Array.from({ length: N - 1 }, (_, i) => i)
    for (const i of base) {
      await c.start(i)
      if (c.form !== undefined && (i + 1) % FORM_BATCH === 0) await sleep(c.form.pauseMs)
    }
    for (const i of base)
      await waitAll(
        c,
        base.filter(o => o !== i),
        i,
        'join',
        0,
        c.form?.timeoutMs ?? 120000
      )
    // Joins: a fresh node each time, seen joined by all; it then leaves (except the last).
    const joins: number[] = []
    for (let k = 0; k < JOINS; k++) {
      const idx = N - 1 + k
      const from = await c.start(idx)
      joins.push((await waitAll(c, base, idx, 'join', from)) - from)
      if (k < JOINS - 1) {
        const left = Date.now()
        c.signal(idx, c.leaveSignal)
        await waitAll(c, base, idx, 'leave', left)
      }
    }
    const all = [...base, N - 1 + JOINS - 1]
    // Soak: nothing happens; any failure now is a false alarm. Bytes at rest within it.
    const soakStart = Date.now()
    await sleep(REST_AFTER_JOIN_MS)
    const tx0 = loTxBytes()
    const cpu0 = c.cpu()
    lag.enable()
    await sleep(REST_S * 1000)
    const restLag = lagMs(lag)
    lag.disable()
    const tx1 = loTxBytes()
    const cpuPerNode = (c.cpu().seconds - cpu0.seconds) / cpu0.nodes / REST_S
    for (
      let left = SOAK_S * 1000 - (Date.now() - soakStart);
      left > 0;
      left = SOAK_S * 1000 - (Date.now() - soakStart)
    ) {
      await sleep(Math.min(left, 60000))
      process.stderr.write(
        `soak: ${Math.round((Date.now() - soakStart) / 1000)} s, ${c.count('fail', soakStart) ?? 'n/a'} failures\n`
      )
    }
    const falseAlarms = c.count('fail', soakStart) ?? NaN
    const suspects = c.count('suspect', soakStart)
    // SIGKILL one, SIGSTOP another, then let the stopped one resume.
    const killed = all[KILLED]
    const stopped = all[STOPPED]
    const survivors = all.filter(i => i !== killed && i !== stopped)
    const tk = Date.now()
    c.signal(killed, 'SIGKILL')
    const killSeen = await waitAll(c, survivors, killed, 'fail', tk)
    const ts = Date.now()
    c.signal(stopped, 'SIGSTOP')
    const stopSeen = await waitAll(c, survivors, stopped, 'fail', ts)
    c.signal(stopped, 'SIGCONT')
    const tc = Date.now()
    const back = await waitAll(c, survivors, stopped, 'join', tc)
    // Not the stopped node: in-process it is reached through a relay only, and cannot reach the far nodes either.
    const observers = all.filter(i => i !== killed && i !== stopped)
    const coord = c.physarum !== undefined ? await coordinates(c, observers) : undefined
    return {
      joinMedianMs: median(joins),
      joinMaxMs: Math.max(...joins),
      killFailedMs: killSeen - tk,
      stopFailedMs: stopSeen - ts,
      resumeAliveMs: back - tc,
      bytesPerNodePerS: tx0 !== undefined && tx1 !== undefined ? (tx1 - tx0) / N / REST_S : NaN,
      cpuPercentPerNode: cpuPerNode * 100,
      restLagMs: restLag,
      falseAlarms,
      ...(suspects !== undefined ? { suspects } : {}),
      soakS: Math.max(SOAK_S, REST_AFTER_JOIN_MS / 1000 + REST_S),
      ...(coord !== undefined ? Object.fromEntries(Object.entries(coord).map(([k, v]) => [`coord_${k}`, v])) : {})
    }
  } finally {
    lag.disable()
    await c.close()
  }
}

async function inner(netns: boolean): Promise<void> {
  if (SIZES.length === 0) throw new Error('BENCH_NODES: sizes of at least 8 nodes, e.g. 20 or 20,50,100')
  for (const [k, v] of Object.entries({ BENCH_SOAK_S: SOAK_S, BENCH_JOINS: JOINS, BENCH_COORD_S: COORD_S }))
    if (!Number.isFinite(v) || v < (k === 'BENCH_JOINS' ? 1 : 0)) throw new Error(`${k}: not a usable number`)
  for (const n of SIZES) await size(n, netns)
}

/** One size: physarum, then serf, then the table. */
async function size(N: number, netns: boolean): Promise<void> {
  const mode: Mode = N >= INPROCESS ? 'in-process' : 'processes'
  const p = await scenario(mode === 'processes' ? physarumCluster(N) : inProcessCluster(N), N)
  process.stderr.write(`physarum ${N} (${mode}): ${JSON.stringify(p)}\n`)
  let s: Record<string, number> | undefined
  const withSerf = process.env.BENCH_SERF !== '0'
  try {
    if (withSerf && spawnSync('sh', ['-c', 'command -v serf']).status === 0) {
      s = await scenario(serfCluster(), N)
      process.stderr.write(`serf ${N}: ${JSON.stringify(s)}\n`)
    }
  } catch (err) {
    process.stderr.write(`serf comparison failed: ${(err as Error).message}\n`)
  }
  const row = (name: string, how: Mode, r: Record<string, number> | undefined): string =>
    r === undefined
      ? `| ${name} | | ${withSerf ? 'not installed' : 'not run (BENCH_SERF=0)'} | | | | | | |`
      : `| ${name} | ${how} | ${fmt(r.joinMedianMs)} (max ${fmt(r.joinMaxMs)}) | ${fmt(r.killFailedMs)} | ${fmt(r.stopFailedMs)} | ${fmt(r.resumeAliveMs)} | ${fmt(r.bytesPerNodePerS)} | ${fmt(r.cpuPercentPerNode, 2)} | ${r.falseAlarms}${r.suspects !== undefined ? ` (${r.suspects})` : ''} in ${r.soakS} s |`
  const how =
    mode === 'processes'
      ? 'each a real process on 127.0.0.1'
      : `all ${N} real libp2p nodes in one Node.js process on 127.0.0.1 (more than this machine holds as processes; SIGKILL is a stop without leave, SIGSTOP a frozen relay in front of the node, CPU is the process's divided by ${N}; event-loop delay at rest ${fmt(p.restLagMs, 1)} ms median)`
  const coord =
    p.coord_pairs !== undefined
      ? `\n\nNetwork coordinates: four more nodes behind TCP relays adding ${FAR_RTT_MS.join(', ')} ms of RTT. Of ${p.coord_pairs} pairs (member, far node), ${p.coord_within} (${fmt(100 * p.coord_fraction)} %) have an estimate within 25 % or 1 ms of the RTT measured over libp2p (median of ${PROBES_PER_PAIR} probes; ${p.coord_measured} pairs measured); error median ${fmt(p.coord_medianErrMs, 2)} ms (${fmt(p.coord_medianErrPct, 1)} %), p90 ${fmt(p.coord_p90ErrMs, 2)} ms; ${Number.isFinite(p.coord_settledS) ? `${COORD_TARGET * 100} % of pairs within after ${fmt(p.coord_settledS)} s` : `not ${COORD_TARGET * 100} % within ${COORD_S} s`} from the far nodes' join (the probes SWIM makes anyway, no more). Event-loop delay of the process holding the far nodes and relays: ${fmt(p.coord_lagMs, 1)} ms median.`
      : ''
  const markdown = `${N} nodes, ${how}${netns ? ", in a network namespace of the benchmark's own (so the loopback byte counter is the cluster's alone)" : ''}. Times in milliseconds, measured from the joining node's start (physarum: its "started" log line or Agent.start; serf: its spawn) or from the signal, to the moment the **last** of the other nodes logged the change.

| | run as | join seen by all (median of ${JOINS}) | SIGKILL → failed on all | SIGSTOP → failed on all | SIGCONT → alive on all | bytes per node per s at rest | CPU % of a core per node at rest | false failures (suspicions) during soak |
|---|---|---|---|---|---|---|---|---|
${row('physarum', mode, p)}
${row('serf', 'processes', s)}${coord}

Targets (issue 19): join ≤ 1 s at 100 nodes, failed ≤ 3000 ms, bytes at rest ≤ 3× serf's and flat in N, no false failure in a 10-minute soak (\`BENCH_SOAK_S=600 npm run bench -- membership\`), ≥ 90 % of coordinate estimates within 25 % or 1 ms.${s !== undefined ? ` Ratios (serf / physarum): join ${fmt(s.joinMedianMs / p.joinMedianMs, 1)}×, SIGKILL ${fmt(s.killFailedMs / p.killFailedMs, 1)}×, SIGSTOP ${fmt(s.stopFailedMs / p.stopFailedMs, 1)}×; bytes at rest ${fmt(p.bytesPerNodePerS / s.bytesPerNodePerS, 1)}× serf's.` : ''}

How they probe: physarum runs SWIM with Lifeguard (src/cluster/membership/swim.ts): each node probes one member every 500 ms (Membership.ProbeIntervalMs) over a kept-open libp2p stream, the ack carrying the target's Vivaldi coordinate; a member's state changes travel as small versioned deltas on gossipsub, and nothing of it at rest (src/cluster/membership/delta.ts); serf (memberlist) probes one member per second in UDP packets. The model to 1,000 and 10,000 nodes is in docs/SCALE.md.`
  saveResult(SOAK_S >= 600 ? `membership-soak${N === 20 ? '' : `-${N}`}` : `membership${N === 20 ? '' : `-${N}`}`, {
    title:
      SOAK_S >= 600
        ? `Membership: ${N} nodes (${mode}), ${SOAK_S / 60}-minute soak`
        : `Membership: ${N} nodes (${mode}), physarum vs serf`,
    ranAt: new Date().toISOString(),
    machine: machine(),
    markdown,
    data: { physarum: p, serf: s ?? null, nodes: N, mode }
  })
  process.stdout.write(markdown + '\n')
}

export async function run(): Promise<void> {
  const canNetns =
    process.getuid?.() === 0 &&
    spawnSync('ip', ['netns', 'list']).status === 0 &&
    process.env.PHYSARUM_BENCH_IN_NETNS !== '1'
  if (process.env.PHYSARUM_BENCH_IN_NETNS === '1') {
    await inner(true)
    return
  }
  if (!canNetns) {
    await inner(false)
    return
  }
  const ns = `physarum-bench-${process.pid}`
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) {
    await inner(false)
    return
  }
  try {
    spawnSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, join(ROOT, 'build/bench/run.js'), 'membership'], {
      stdio: 'inherit',
      env: { ...process.env, PHYSARUM_BENCH_IN_NETNS: '1' }
    })
    if (r.status !== 0) throw new Error(`membership benchmark failed (exit ${r.status})`)
  } finally {
    spawnSync('ip', ['netns', 'del', ns])
  }
}
