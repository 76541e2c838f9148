// Membership benchmark: N physarum daemons (real processes, BENCH_NODES, 20 by default;
// several sizes in one run as BENCH_NODES=20,50,100, a table each) on 127.0.0.1 — join
// seen by all, SIGKILL and SIGSTOP seen as failed by all, bytes and CPU per node at rest,
// false failures during a soak — and the same with N HashiCorp serf agents when installed
// (apt-get install serf), size by size.
// Runs inside a network namespace of its own when it can, so that the loopback byte
// counters belong to the cluster under test alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, fmt, machine, median, saveResult } from './lib.js'
import { setTimeout as sleep } from 'node:timers/promises'

/** Cluster sizes to run, one after the other: BENCH_NODES=20 or BENCH_NODES=20,50,100. */
const SIZES = (process.env.BENCH_NODES ?? '20')
  .split(',')
  .map(s => Number(s.trim()))
  .filter(n => Number.isInteger(n) && n >= 8)
const JOINS = Number(process.env.BENCH_JOINS ?? 5)
const SOAK_S = Number(process.env.BENCH_SOAK_S ?? 60)
const REST_S = 20
/**
 * The bytes at rest are counted from this long after the last join (ms): a newcomer announces itself in full a few
 * times in its first minute (membership.ts JOIN_FULL_MS), which is joining, not rest.
 */
const REST_AFTER_JOIN_MS = 65000

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
  signal: (i: number, sig: NodeJS.Signals) => void
  /** PIDs of the running nodes, for their CPU time. */
  pids: () => number[]
  /** The signal on which a node leaves gracefully. */
  leaveSignal: NodeJS.Signals
  close: () => Promise<void>
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
  throw new Error(`not every node saw node ${i} ${change} within ${timeoutMs} ms`)
}

interface Ev {
  t: number
  node: number
  change: Change
  subject: string
}

function latest(events: Ev[], observers: number[], subject: string, change: Change, after: number): number | undefined {
  let t = 0
  for (const o of observers) {
    const e = events.find(x => x.node === o && x.subject === subject && x.change === change && x.t >= after - 5)
    if (e === undefined) return undefined
    t = Math.max(t, e.t)
  }
  return t
}

/** N physarum allocators, real processes, read through their JSON logs. */
function physarumCluster(N: number): ClusterAdapter {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-'))
  const conf = join(dir, 'conf.json')
  writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Log: { Format: 'json' } }))
  const events: Ev[] = []
  const procs: ChildProcess[] = []
  const peers: string[] = []
  const addrs: string[] = []
  const kinds: Record<string, Change> = { alive: 'join', left: 'leave', failed: 'fail', suspect: 'suspect' }
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
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PHYSARUM_PSK: 'physarum benchmark cluster' } }
      )
      procs[i] = p
      return await new Promise<number>(resolve => {
        let startedAt = 0
        createInterface({ input: p.stderr as NodeJS.ReadableStream }).on('line', line => {
          let j: { message?: string; timestamp?: string; peer?: string }
          try {
            j = JSON.parse(line)
          } catch {
            return
          }
          const t = Date.parse(j.timestamp ?? '')
          const m = /^member \S+ is (\w+)$/.exec(j.message ?? '')
          if (m !== null && j.peer !== undefined && kinds[m[1]] !== undefined)
            events.push({ t, node: i, change: kinds[m[1]], subject: j.peer })
          const s = /^allocator (\w+) started$/.exec(j.message ?? '')
          if (s !== null) {
            peers[i] = s[1]
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
    seenByAll: (observers, i, change, after) => latest(events, observers, peers[i], change, after),
    count: (change, since) => events.filter(e => e.t >= since && e.change === change).length,
    signal: (i, sig) => {
      procs[i].kill(sig)
    },
    pids: () => procs.filter(p => p.exitCode === null && p.signalCode === null).map(p => p.pid as number),
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
  const events = (): Ev[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(l => {
        const [ns, self, event, name] = l.split(' ')
        return { t: Number(BigInt(ns) / 1000000n), node: Number(self.slice(1)), change: kinds[event], subject: name }
      })
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
    seenByAll: (observers, i, change, after) => latest(events(), observers, `n${i}`, change, after),
    count: (change, since) =>
      change === 'suspect' ? undefined : events().filter(e => e.t >= since && e.change === change).length,
    signal: (i, sig) => {
      procs[i].kill(sig)
    },
    pids: () => procs.filter(p => p.exitCode === null && p.signalCode === null).map(p => p.pid as number),
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

/** The same scenario for any cluster: form, joins, a soak at rest, SIGKILL, SIGSTOP, SIGCONT. */
async function scenario(c: ClusterAdapter, N: number): Promise<Record<string, number>> {
  try {
    const base = Array.from({ length: N - 1 }, (_, i) => i)
    for (const i of base) await c.start(i)
    for (const i of base)
      await waitAll(
        c,
        base.filter(o => o !== i),
        i,
        'join',
        0
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
    const pids = c.pids()
    const cpu0 = pids.reduce((t, p) => t + cpuSeconds(p), 0)
    await sleep(REST_S * 1000)
    const tx1 = loTxBytes()
    const cpuPerNode = (pids.reduce((t, p) => t + cpuSeconds(p), 0) - cpu0) / pids.length / REST_S
    await sleep(Math.max(0, SOAK_S * 1000 - (Date.now() - soakStart)))
    const falseAlarms = c.count('fail', soakStart) ?? NaN
    const suspects = c.count('suspect', soakStart)
    // SIGKILL one, SIGSTOP another, then let the stopped one resume.
    const killed = all[3]
    const stopped = all[5]
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
    return {
      joinMedianMs: median(joins),
      joinMaxMs: Math.max(...joins),
      killFailedMs: killSeen - tk,
      stopFailedMs: stopSeen - ts,
      resumeAliveMs: back - tc,
      bytesPerNodePerS: tx0 !== undefined && tx1 !== undefined ? (tx1 - tx0) / N / REST_S : NaN,
      cpuPercentPerNode: cpuPerNode * 100,
      falseAlarms,
      ...(suspects !== undefined ? { suspects } : {}),
      soakS: Math.max(SOAK_S, REST_AFTER_JOIN_MS / 1000 + REST_S)
    }
  } finally {
    await c.close()
  }
}

async function inner(netns: boolean): Promise<void> {
  if (SIZES.length === 0) throw new Error('BENCH_NODES: sizes of at least 8 nodes, e.g. 20 or 20,50,100')
  for (const n of SIZES) await size(n, netns)
}

/** One size: physarum, then serf, then the table. */
async function size(N: number, netns: boolean): Promise<void> {
  const p = await scenario(physarumCluster(N), N)
  process.stderr.write(`physarum ${N}: ${JSON.stringify(p)}\n`)
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
  const row = (name: string, r: Record<string, number> | undefined): string =>
    r === undefined
      ? `| ${name} | ${withSerf ? 'not installed' : 'not run (BENCH_SERF=0)'} | | | | | | |`
      : `| ${name} | ${fmt(r.joinMedianMs)} (max ${fmt(r.joinMaxMs)}) | ${fmt(r.killFailedMs)} | ${fmt(r.stopFailedMs)} | ${fmt(r.resumeAliveMs)} | ${fmt(r.bytesPerNodePerS)} | ${fmt(r.cpuPercentPerNode, 2)} | ${r.falseAlarms}${r.suspects !== undefined ? ` (${r.suspects})` : ''} in ${r.soakS} s |`
  const markdown = `${N} nodes, each a real process on 127.0.0.1${netns ? ", in a network namespace of the benchmark's own (so the loopback byte counter is the cluster's alone)" : ''}. Times in milliseconds, measured from the joining node's start (physarum: its "started" log line; serf: its spawn) or from the signal, to the moment the **last** of the other nodes logged the change.

| | join seen by all (median of ${JOINS}) | SIGKILL → failed on all | SIGSTOP → failed on all | SIGCONT → alive on all | bytes per node per s at rest | CPU % of a core per node at rest | false failures (suspicions) during soak |
|---|---|---|---|---|---|---|---|
${row('physarum', p)}
${row('serf', s)}

Targets (issue 19): join ≤ 1 s at 100 nodes, failed ≤ 3000 ms, bytes at rest ≤ 3× serf's and flat in N, no false failure in a 10-minute soak (\`BENCH_SOAK_S=600 npm run bench -- membership\`).${s !== undefined ? ` Ratios (serf / physarum): join ${fmt(s.joinMedianMs / p.joinMedianMs, 1)}×, SIGKILL ${fmt(s.killFailedMs / p.killFailedMs, 1)}×, SIGSTOP ${fmt(s.stopFailedMs / p.stopFailedMs, 1)}×; bytes at rest ${fmt(p.bytesPerNodePerS / s.bytesPerNodePerS, 1)}× serf's.` : ''}

How they probe: physarum runs SWIM with Lifeguard (src/cluster/membership/swim.ts): each node probes one member every 500 ms (Membership.ProbeIntervalMs) over a kept-open libp2p stream, the ack carrying the target's Vivaldi coordinate; a member's state changes travel as small versioned deltas on gossipsub, and nothing of it at rest (src/cluster/membership/delta.ts); serf (memberlist) probes one member per second in UDP packets. The model to 1,000 and 10,000 nodes is in docs/SCALE.md.`
  saveResult(SOAK_S >= 600 ? `membership-soak${N === 20 ? '' : `-${N}`}` : `membership${N === 20 ? '' : `-${N}`}`, {
    title:
      SOAK_S >= 600 ? `Membership: ${N} nodes, ${SOAK_S / 60}-minute soak` : `Membership: ${N} nodes, physarum vs serf`,
    ranAt: new Date().toISOString(),
    machine: machine(),
    markdown,
    data: { physarum: p, serf: s ?? null, nodes: N }
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
