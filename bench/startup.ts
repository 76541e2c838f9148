// Start-up and footprint of the single executable: `physarum --version` wall time (vs
// the same CLI from source and Node's own floor, `node -e 0`), and the resident memory
// of an idle allocator and an idle proxy joined in a two-node cluster.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ROOT, fmt, machine, median, percentile, saveResult } from './lib.js'

const EXE = resolve(ROOT, 'dist/physarum')
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 30)
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20)

function wallMs (cmd: string, args: string[]): number[] {
  const xs: number[] = []
  for (let i = 0; i < RUNS + 2; i++) {
    const t0 = process.hrtime.bigint()
    const r = spawnSync(cmd, args, { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`)
    if (i >= 2) xs.push(Number(process.hrtime.bigint() - t0) / 1e6) // two warm-up runs fill the page cache
  }
  return xs
}

interface Rss { rss: number, anon: number, file: number, peak: number }

function rssMb (pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024, peak: kb('VmHWM') / 1024 }
}

async function idleRss (): Promise<{ allocator: Rss, proxy: Rss }> {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-startup-'))
  const conf = join(dir, 'conf.json')
  writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Psk: 'physarum startup benchmark', Allocator: { Runtime: 'process' } }), { mode: 0o600 })
  const children: ReturnType<typeof spawn>[] = []
  const start = async (args: string[]): Promise<{ pid: number, addr: string }> => {
    const c = spawn(EXE, [...args, '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(c)
    let err = ''
    c.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    for (let i = 0; i < 300; i++) {
      const m = /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)/.exec(err)
      if (m !== null) return { pid: c.pid as number, addr: m[1] }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    throw new Error(`${args[0]} did not start: ${err}`)
  }
  try {
    const a = await start(['allocator'])
    const p = await start(['proxy', '--port', '0', '--bootstrap', a.addr])
    await new Promise(resolve => setTimeout(resolve, IDLE_S * 1000))
    return { allocator: rssMb(a.pid), proxy: rssMb(p.pid) }
  } finally {
    await Promise.all(children.map(async c => {
      if (c.exitCode !== null) return
      const exited = new Promise(resolve => c.once('exit', resolve))
      c.kill('SIGTERM')
      await exited
    }))
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function run (): Promise<void> {
  const exe = wallMs(EXE, ['--version'])
  const source = wallMs(process.execPath, [resolve(ROOT, 'bin/physarum'), '--version'])
  const floor = wallMs(process.execPath, ['-e', '0'])
  const help = wallMs(EXE, ['--help'])
  const mem = await idleRss()
  const sizeMb = statSync(EXE).size / 1048576
  const row = (name: string, xs: number[]): string => `| ${name} | ${fmt(median(xs))} | ${fmt(percentile(xs, 95))} |`
  const markdown = [
    `Wall time of a whole process, ${RUNS} runs each after two warm-up runs, spawned one after another. \`dist/physarum\` is the single executable (${fmt(sizeMb)} MB, a Node ${process.version} SEA with a V8 code cache).`,
    '',
    '| command | median ms | p95 ms |',
    '|---|---|---|',
    row('`dist/physarum --version`', exe),
    row('`node bin/physarum --version` (from source)', source),
    row('`dist/physarum --help` (loads oclif)', help),
    row('`node -e 0` (Node\'s own start-up, the floor)', floor),
    '',
    `Target: \`--version\` ≤ 150 ms. The executable's \`--version\` costs ${fmt(median(exe) - median(floor))} ms above Node's bare start-up here.`,
    '',
    `Resident memory after ${IDLE_S} s idle, an allocator (process runtime, no instance) and a proxy from \`dist/physarum\`, joined through a PSK on 127.0.0.1:`,
    '',
    '| daemon | RSS MB | of which private (RssAnon) | of which the executable\'s file pages (RssFile) | peak RSS MB |',
    '|---|---|---|---|---|',
    ...(['allocator', 'proxy'] as const).map(k => `| ${k} | ${fmt(mem[k].rss)} | ${fmt(mem[k].anon)} | ${fmt(mem[k].file)} | ${fmt(mem[k].peak)} |`),
    '',
    'Target: ≤ 60 MB each. The file pages are the executable\'s code and read-only data (Node itself, V8, ICU, the bundle): clean, shared by every physarum process on a host (the allocator, its proxies, and its process-runtime instances of the demo app), and reclaimable under memory pressure; a bare `node` HTTP server maps ~36 MB of them. The private part is the JavaScript heap (V8 reserves young-generation space generously: `NODE_OPTIONS=--max-semi-space-size=1` takes ~10 MB off) and libp2p\'s buffers.'
  ].join('\n')
  saveResult('startup', {
    title: 'Start-up and idle memory of the executable',
    ranAt: new Date().toISOString(),
    machine: machine(),
    markdown,
    data: { runs: RUNS, versionMs: median(exe), versionP95Ms: percentile(exe, 95), sourceVersionMs: median(source), helpMs: median(help), nodeFloorMs: median(floor), idleS: IDLE_S, allocator: mem.allocator, proxy: mem.proxy, sizeMb }
  })
  process.stderr.write(markdown + '\n')
}
