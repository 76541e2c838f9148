// Membership benchmark: 20 physarum daemons (real processes) on 127.0.0.1 — join seen
// by all, SIGKILL and SIGSTOP seen as failed by all, gossip bytes at rest, false
// failures during a soak — and the same with 20 HashiCorp serf agents when installed.
// Runs inside a network namespace of its own when it can, so that the loopback byte
// counters belong to the cluster under test alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, fmt, machine, median, saveResult } from './lib.js'

const N = Number(process.env.BENCH_NODES ?? 20)
const JOINS = Number(process.env.BENCH_JOINS ?? 5)
const SOAK_S = Number(process.env.BENCH_SOAK_S ?? 60)
const REST_S = 20
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

function loTxBytes (): number | undefined {
  try { return Number(readFileSync('/sys/class/net/lo/statistics/tx_bytes', 'utf8')) } catch { return undefined }
}

interface Ev { t: number, node: number, event: string, peer: string }

class Cluster {
  events: Ev[] = []
  procs: ChildProcess[] = []
  peers: string[] = []
  addrs: string[] = []
  startedAt: number[] = []
  private readonly dir = mkdtempSync(join(tmpdir(), 'physarum-bench-'))
  private readonly conf = join(this.dir, 'conf.json')

  constructor () { writeFileSync(this.conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Log: { Format: 'json' } })) }

  async start (i: number, bootstrap?: string): Promise<void> {
    const args = [join(ROOT, 'bin/physarum'), 'allocator', '--configfile', this.conf, '--ephemeral', '--admin', '127.0.0.1:0', ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])]
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PHYSARUM_PSK: 'physarum benchmark cluster' } })
    this.procs[i] = p
    let ready: () => void
    const started = new Promise<void>(resolve => { ready = resolve })
    createInterface({ input: p.stderr as NodeJS.ReadableStream }).on('line', line => {
      let j: { message?: string, timestamp?: string, peer?: string }
      try { j = JSON.parse(line) } catch { return }
      const t = Date.parse(j.timestamp ?? '')
      const m = /^member \S+ is (\w+)$/.exec(j.message ?? '')
      if (m !== null && j.peer !== undefined) this.events.push({ t, node: i, event: m[1], peer: j.peer })
      const s = /^allocator (\w+) started$/.exec(j.message ?? '')
      if (s !== null) { this.peers[i] = s[1]; this.startedAt[i] = t }
      const l = /^listening on (\/ip4\/127\.0\.0\.1\/\S+)$/.exec(j.message ?? '')
      if (l !== null) { this.addrs[i] = l[1]; ready() }
    })
    await started
  }

  /** Latest time at which every node in `observers` logged `event` for `peer`; undefined until all did. */
  seenByAll (observers: number[], peer: string, event: string, after: number): number | undefined {
    let latest = 0
    for (const o of observers) {
      const e = this.events.find(x => x.node === o && x.peer === peer && x.event === event && x.t >= after - 5)
      if (e === undefined) return undefined
      latest = Math.max(latest, e.t)
    }
    return latest
  }

  async waitAll (observers: number[], peer: string, event: string, after: number, timeoutMs = 30000): Promise<number> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const t = this.seenByAll(observers, peer, event, after)
      if (t !== undefined) return t
      await sleep(20)
    }
    throw new Error(`not every node saw ${peer} ${event} within ${timeoutMs} ms`)
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.procs.map(async p => {
      if (p.exitCode !== null || p.signalCode !== null) return
      const exited = new Promise(resolve => p.once('exit', resolve))
      p.kill('SIGCONT'); p.kill('SIGTERM')
      const t = setTimeout(() => p.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
    }))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

async function physarum (): Promise<Record<string, number>> {
  const c = new Cluster()
  try {
    await c.start(0)
    for (let i = 1; i < N - 1; i++) await c.start(i, c.addrs[0])
    const base = Array.from({ length: N - 1 }, (_, i) => i)
    for (const i of base) for (const o of base) if (o !== i) await c.waitAll([o], c.peers[i], 'alive', 0, 60000)
    // Joins: a fresh node each time, seen alive by all; it then leaves (except the last).
    const joins: number[] = []
    for (let k = 0; k < JOINS; k++) {
      const idx = N - 1 + k
      await c.start(idx, c.addrs[k % (N - 1)])
      const seen = await c.waitAll(base, c.peers[idx], 'alive', c.startedAt[idx])
      joins.push(seen - c.startedAt[idx])
      if (k < JOINS - 1) {
        const left = Date.now()
        c.procs[idx].kill('SIGTERM')
        await c.waitAll(base, c.peers[idx], 'left', left)
      }
    }
    const all = [...base, N - 1 + JOINS - 1]
    // Soak: nothing happens; any suspect/failed now is a false alarm. Bytes at rest within it.
    const soakStart = Date.now()
    await sleep(5000)
    const tx0 = loTxBytes()
    await sleep(REST_S * 1000)
    const tx1 = loTxBytes()
    await sleep(Math.max(0, SOAK_S * 1000 - (Date.now() - soakStart)))
    const falseAlarms = c.events.filter(e => e.t >= soakStart && e.event === 'failed').length
    const suspects = c.events.filter(e => e.t >= soakStart && e.event === 'suspect').length
    // SIGKILL one, SIGSTOP another.
    const killed = all[3]
    const stopped = all[5]
    const survivors = all.filter(i => i !== killed && i !== stopped)
    const tk = Date.now()
    c.procs[killed].kill('SIGKILL')
    const killSeen = await c.waitAll(survivors, c.peers[killed], 'failed', tk)
    const ts = Date.now()
    c.procs[stopped].kill('SIGSTOP')
    const stopSeen = await c.waitAll(survivors, c.peers[stopped], 'failed', ts)
    c.procs[stopped].kill('SIGCONT')
    const tc = Date.now()
    const back = await c.waitAll(survivors, c.peers[stopped], 'alive', tc)
    return {
      joinMedianMs: median(joins),
      joinMaxMs: Math.max(...joins),
      killFailedMs: killSeen - tk,
      stopFailedMs: stopSeen - ts,
      resumeAliveMs: back - tc,
      bytesPerNodePerS: tx0 !== undefined && tx1 !== undefined ? (tx1 - tx0) / N / REST_S : NaN,
      falseAlarms,
      suspects,
      soakS: SOAK_S
    }
  } finally {
    await c.stopAll()
  }
}

async function serf (): Promise<Record<string, number> | undefined> {
  if (spawnSync('sh', ['-c', 'command -v serf']).status !== 0) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-serf-'))
  const log = join(dir, 'events.log')
  const handler = join(dir, 'handler.sh')
  writeFileSync(handler, `#!/bin/sh\nnow=$(date +%s%N)\nwhile read -r name rest; do echo "$now $SERF_SELF_NAME $SERF_EVENT $name" >> ${log}; done\n`)
  chmodSync(handler, 0o755)
  writeFileSync(log, '')
  const procs: ChildProcess[] = []
  const startedAt: number[] = []
  const start = (i: number): void => {
    startedAt[i] = Date.now()
    procs[i] = spawn('serf', ['agent', `-node=n${i}`, `-bind=127.0.0.1:${17946 + i}`, `-rpc-addr=127.0.0.1:${27373 + i}`, '-log-level=err',
      `-event-handler=member-join,member-leave,member-failed=${handler}`, ...(i > 0 ? [`-join=127.0.0.1:${17946 + (i % Math.max(1, Math.min(i, N - 1))) }`] : [])], { stdio: 'ignore' })
  }
  const events = (): Array<{ t: number, self: string, event: string, name: string }> => readFileSync(log, 'utf8').split('\n').filter(Boolean).map(l => {
    const [ns, self, event, name] = l.split(' ')
    return { t: Number(BigInt(ns) / 1000000n), self, event, name }
  })
  const waitAll = async (observers: number[], name: string, event: string, after: number, timeoutMs = 60000): Promise<number> => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const ev = events()
      let latest = 0
      let all = true
      for (const o of observers) {
        const e = ev.find(x => x.self === `n${o}` && x.name === name && x.event === event && x.t >= after - 5)
        if (e === undefined) { all = false; break }
        latest = Math.max(latest, e.t)
      }
      if (all) return latest
      await sleep(50)
    }
    throw new Error(`serf: not every agent saw ${name} ${event}`)
  }
  try {
    start(0)
    await sleep(300)
    for (let i = 1; i < N - 1; i++) { start(i); await sleep(30) }
    const base = Array.from({ length: N - 1 }, (_, i) => i)
    for (const i of base) await waitAll(base.filter(o => o !== i), `n${i}`, 'member-join', 0)
    const joins: number[] = []
    for (let k = 0; k < JOINS; k++) {
      const idx = N - 1 + k
      start(idx)
      const seen = await waitAll(base, `n${idx}`, 'member-join', startedAt[idx])
      joins.push(seen - startedAt[idx])
      if (k < JOINS - 1) {
        const left = Date.now()
        procs[idx].kill('SIGINT') // serf leaves gracefully on SIGINT (SIGTERM does not leave by default)
        await waitAll(base, `n${idx}`, 'member-leave', left)
      }
    }
    const all = [...base, N - 1 + JOINS - 1]
    const soakStart = Date.now()
    await sleep(5000)
    const tx0 = loTxBytes()
    await sleep(REST_S * 1000)
    const tx1 = loTxBytes()
    await sleep(Math.max(0, SOAK_S * 1000 - (Date.now() - soakStart)))
    const falseAlarms = events().filter(e => e.t >= soakStart && e.event === 'member-failed').length
    const killed = all[3]
    const stopped = all[5]
    const survivors = all.filter(i => i !== killed && i !== stopped)
    const tk = Date.now()
    procs[killed].kill('SIGKILL')
    const killSeen = await waitAll(survivors, `n${killed}`, 'member-failed', tk)
    const ts = Date.now()
    procs[stopped].kill('SIGSTOP')
    const stopSeen = await waitAll(survivors, `n${stopped}`, 'member-failed', ts)
    procs[stopped].kill('SIGCONT')
    const tc = Date.now()
    const back = await waitAll(survivors, `n${stopped}`, 'member-join', tc)
    return {
      joinMedianMs: median(joins),
      joinMaxMs: Math.max(...joins),
      killFailedMs: killSeen - tk,
      stopFailedMs: stopSeen - ts,
      resumeAliveMs: back - tc,
      bytesPerNodePerS: tx0 !== undefined && tx1 !== undefined ? (tx1 - tx0) / N / REST_S : NaN,
      falseAlarms,
      soakS: SOAK_S
    }
  } finally {
    for (const p of procs) { try { p.kill('SIGCONT'); p.kill('SIGKILL') } catch {} }
    await sleep(200)
    rmSync(dir, { recursive: true, force: true })
  }
}

async function inner (netns: boolean): Promise<void> {
  const p = await physarum()
  process.stderr.write(`physarum: ${JSON.stringify(p)}\n`)
  let s: Record<string, number> | undefined
  const withSerf = process.env.BENCH_SERF !== '0'
  try {
    if (withSerf) s = await serf()
  } catch (err) {
    process.stderr.write(`serf comparison failed: ${(err as Error).message}\n`)
  }
  const row = (name: string, r: Record<string, number> | undefined): string => r === undefined
    ? `| ${name} | ${withSerf ? 'not installed' : 'not run (BENCH_SERF=0)'} | | | | | |`
    : `| ${name} | ${fmt(r.joinMedianMs)} (max ${fmt(r.joinMaxMs)}) | ${fmt(r.killFailedMs)} | ${fmt(r.stopFailedMs)} | ${fmt(r.resumeAliveMs)} | ${fmt(r.bytesPerNodePerS)} | ${r.falseAlarms}${r.suspects !== undefined ? ` (${r.suspects})` : ''} in ${r.soakS} s |`
  const markdown = `${N} nodes, each a real process on 127.0.0.1${netns ? ', in a network namespace of the benchmark\'s own (so the loopback byte counter is the cluster\'s alone)' : ''}. Times in milliseconds, measured from the joining node's start (physarum: its "started" log line; serf: its spawn) or from the signal, to the moment the **last** of the other nodes logged the change.

| | join seen by all (median of ${JOINS}) | SIGKILL → failed on all | SIGSTOP → failed on all | SIGCONT → alive on all | gossip bytes per node per s at rest | false failures (suspicions) during soak |
|---|---|---|---|---|---|---|
${row('physarum', p)}
${row('serf', s)}

Targets: join ≤ 300 ms, failed ≤ 3000 ms, no false failure in a 10-minute soak (\`BENCH_SOAK_S=600 npm run bench -- membership\`).${s !== undefined ? ` Ratios (serf / physarum): join ${fmt(s.joinMedianMs / p.joinMedianMs, 1)}×, SIGKILL ${fmt(s.killFailedMs / p.killFailedMs, 1)}×, SIGSTOP ${fmt(s.stopFailedMs / p.stopFailedMs, 1)}×; bytes at rest ${fmt(p.bytesPerNodePerS / s.bytesPerNodePerS, 1)}× serf's.` : ''}

Why the bytes differ: physarum probes every member directly (every 500 ms, or every N × 100 ms in a cluster of N) over a kept-open stream, RTT and liveness in one, and re-announces every 10 s, so its traffic at rest grows with the cluster size squared; serf probes one random member per second and gossips in UDP packets.`
  saveResult(SOAK_S >= 600 ? 'membership-soak' : 'membership', { title: SOAK_S >= 600 ? `Membership: 20 nodes, ${SOAK_S / 60}-minute soak` : 'Membership: 20 nodes, physarum vs serf', ranAt: new Date().toISOString(), machine: machine(), markdown, data: { physarum: p, serf: s ?? null, nodes: N } })
  process.stdout.write(markdown + '\n')
}

export async function run (): Promise<void> {
  const canNetns = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0 && process.env.PHYSARUM_BENCH_IN_NETNS !== '1'
  if (process.env.PHYSARUM_BENCH_IN_NETNS === '1') { await inner(true); return }
  if (!canNetns) { await inner(false); return }
  const ns = `physarum-bench-${process.pid}`
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) { await inner(false); return }
  try {
    spawnSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'])
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, join(ROOT, 'build/bench/run.js'), 'membership'], { stdio: 'inherit', env: { ...process.env, PHYSARUM_BENCH_IN_NETNS: '1' } })
    if (r.status !== 0) throw new Error(`membership benchmark failed (exit ${r.status})`)
  } finally {
    spawnSync('ip', ['netns', 'del', ns])
  }
}

