// Start-up and footprint of the single executable: `physarum --version` wall time (vs
// the same CLI from source and Node's own floor, `node -e 0`), and the resident memory
// of an idle allocator and an idle proxy joined in a two-node cluster.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ROOT, fmt, machine, median, percentile, saveResult } from './lib.js'
import { setTimeout as sleep } from 'node:timers/promises'

const EXE = resolve(ROOT, 'dist/physarum')
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 30)
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20)
const IDLE_RUNS = Number(process.env.BENCH_IDLE_RUNS ?? 3)
const BUN_VERSION = process.env.BENCH_BUN_VERSION ?? '1.4.5'

function wallMs(cmd: string, args: string[]): number[] {
  const xs: number[] = []
  for (let i = 0; i < RUNS + 2; i++) {
    const t0 = process.hrtime.bigint()
    const r = spawnSync(cmd, args, { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`)
    if (i >= 2) xs.push(Number(process.hrtime.bigint() - t0) / 1e6) // two warm-up runs fill the page cache
  }
  return xs
}

interface Rss {
  rss: number
  anon: number
  file: number
  peak: number
}

function rssMb(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024, peak: kb('VmHWM') / 1024 }
}

interface Pair {
  allocator: number
  proxy: number
  http: string
  stop: () => Promise<void>
}

/** An allocator and a proxy of `exe`, joined through a PSK on 127.0.0.1 (process runtime). */
async function startPair(exe: string, apps: Record<string, unknown> = {}): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-startup-'))
  const conf = join(dir, 'conf.json')
  writeFileSync(
    conf,
    JSON.stringify({
      Listen: ['/ip4/127.0.0.1/tcp/0'],
      Psk: 'physarum startup benchmark',
      Allocator: { Runtime: 'process' },
      Apps: apps
    }),
    { mode: 0o600 }
  )
  const children: ReturnType<typeof spawn>[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(async c => {
        if (c.exitCode !== null || c.signalCode !== null) return
        const exited = new Promise(resolve => c.once('exit', resolve))
        c.kill('SIGTERM')
        await exited
      })
    )
    rmSync(dir, { recursive: true, force: true })
  }
  const start = async (args: string[], re: RegExp): Promise<{ pid: number; m: RegExpExecArray }> => {
    const c = spawn(exe, [...args, '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    children.push(c)
    let out = ''
    c.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    c.stderr?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    for (let i = 0; i < 400; i++) {
      const m = re.exec(out)
      if (m !== null) return { pid: c.pid as number, m }
      await sleep(50)
    }
    throw new Error(`${exe} ${args[0]} did not start: ${out}`)
  }
  try {
    const a = await start(['allocator'], /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)/)
    const p = await start(
      ['proxy', '--port', '0', '--bootstrap', a.m[1]],
      /proxy listening on (http:\/\/127\.0\.0\.1:\d+)\//
    )
    return { allocator: a.pid, proxy: p.pid, http: p.m[1], stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/**
 * How much of the executable's file an idle daemon maps depends on how the file sits in
 * the page cache, not only on what the daemon runs: Linux 6.18 maps a whole large folio on
 * a fault, and a file just written in one go (or read whole) sits in large folios, one
 * paged in from disk at start in smaller ones. So each state is measured on its own:
 * 'cold' drops the executable's cached pages first (as after a reboot; pages another
 * running process maps stay), 'written' runs a copy written in one go just before.
 */
function inState(state: 'cold' | 'written'): string {
  if (state === 'written') {
    const copy = resolve(ROOT, '.bench-tmp/physarum-written')
    mkdirSync(resolve(ROOT, '.bench-tmp'), { recursive: true })
    rmSync(copy, { force: true })
    writeFileSync(copy, readFileSync(EXE), { mode: 0o755 })
    return copy
  }
  spawnSync('sync', [EXE])
  spawnSync('dd', [`if=${EXE}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' })
  return EXE
}

/** The median of IDLE_RUNS pairs, field by field. */
async function idleRss(state: 'cold' | 'written'): Promise<{ allocator: Rss; proxy: Rss }> {
  const runs: Array<{ allocator: Rss; proxy: Rss }> = []
  for (let i = 0; i < IDLE_RUNS; i++) {
    const pair = await startPair(inState(state))
    try {
      await sleep(IDLE_S * 1000)
      runs.push({ allocator: rssMb(pair.allocator), proxy: rssMb(pair.proxy) })
    } finally {
      await pair.stop()
    }
  }
  const med = (k: 'allocator' | 'proxy'): Rss => ({
    rss: median(runs.map(r => r[k].rss)),
    anon: median(runs.map(r => r[k].anon)),
    file: median(runs.map(r => r[k].file)),
    peak: median(runs.map(r => r[k].peak))
  })
  return { allocator: med('allocator'), proxy: med('proxy') }
}

/** bun's own executable, from the npm registry (cached in .bench-tmp/). */
function bunBinary(): string | undefined {
  const dir = resolve(ROOT, '.bench-tmp/bun')
  const bin = join(dir, 'package/bin/bun')
  if (existsSync(bin)) return bin
  mkdirSync(dir, { recursive: true })
  const pack = spawnSync('npm', ['pack', `@oven/bun-linux-x64@${BUN_VERSION}`, '--silent'], {
    cwd: dir,
    encoding: 'utf8'
  })
  if (pack.status !== 0) return undefined
  spawnSync('tar', ['xzf', pack.stdout.trim().split('\n').pop() ?? ''], { cwd: dir })
  return existsSync(bin) ? bin : undefined
}

interface Moves {
  mbPerS: number[]
  rps: number | undefined
  failures: string[]
}

/** 100 MB downloads and a wrk run through an allocator + proxy pair of `exe`. */
async function moves(exe: string): Promise<Moves> {
  const pair = await startPair(exe, {
    hello: {
      Command: [process.execPath, resolve(ROOT, 'apps/hello-world-server/server.mjs')],
      Health: { Path: '/healthz' },
      IdleTimeoutS: 3600
    }
  })
  const mbPerS: number[] = []
  const failures: string[] = []
  try {
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${pair.http}/hello/hello`).catch(() => undefined)
      if (r?.status === 200) break
      await sleep(200)
    }
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now()
      let n = 0
      let why = ''
      try {
        const r = await fetch(`${pair.http}/hello/bytes?n=${100 * 1048576}`, { signal: AbortSignal.timeout(60000) })
        if (r.status !== 200) why = `HTTP ${r.status}`
        for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) n += c.length
      } catch (err) {
        why = (err as Error).name === 'TimeoutError' ? 'not done in 60 s' : (err as Error).message
      }
      if (n === 100 * 1048576) mbPerS.push(100 / ((performance.now() - t0) / 1000))
      else failures.push(`${why || 'short body'} after ${(n / 1048576).toFixed(0)} MB`)
    }
    let rps: number | undefined
    if (spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0) {
      const w = spawnSync('wrk', ['-t2', '-c32', '-d5s', `${pair.http}/hello/hello`], { encoding: 'utf8' })
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(w.stdout)
      const total = /(\d+) requests in/.exec(w.stdout)
      rps =
        non2xx !== null && total !== null && Number(non2xx[1]) === Number(total[1])
          ? 0
          : Number(/Requests\/sec:\s+([\d.]+)/.exec(w.stdout)?.[1] ?? NaN)
    }
    return { mbPerS, rps, failures }
  } finally {
    await pair.stop()
  }
}

export async function run(): Promise<void> {
  const exe = wallMs(EXE, ['--version'])
  const source = wallMs(process.execPath, [resolve(ROOT, 'bin/physarum'), '--version'])
  const floor = wallMs(process.execPath, ['-e', '0'])
  const help = wallMs(EXE, ['--help'])
  const mem = await idleRss('cold')
  const memWritten = await idleRss('written')
  const sizeMb = statSync(EXE).size / 1048576
  // The other way to one executable: bun build --compile of the same bundle.
  const bun = bunBinary()
  const bunExe = resolve(ROOT, '.bench-tmp/physarum-bun')
  const bunBuilt =
    bun !== undefined &&
    spawnSync(bun, ['build', '--compile', resolve(ROOT, 'dist/physarum.cjs'), '--outfile', bunExe], { stdio: 'ignore' })
      .status === 0
  const sea = await moves(EXE)
  const viaBun = bunBuilt ? await moves(bunExe) : undefined
  const bunVersion = bunBuilt ? wallMs(bunExe, ['--version']) : []
  const movesRow = (name: string, m: Moves | undefined, size: number, version: number[]): string =>
    m === undefined
      ? `| ${name} | (bun could not be fetched or could not compile the bundle) | | | |`
      : `| ${name} | ${fmt(size)} | ${fmt(median(version))} | ${m.mbPerS.length > 0 ? fmt(median(m.mbPerS), 1) : 'failed'}${m.failures.length > 0 ? ` (${m.failures.length} of 3 failed: ${m.failures[0]})` : ''} | ${m.rps === undefined ? 'n/a (no wrk)' : fmt(m.rps)} |`
  const row = (name: string, xs: number[]): string => `| ${name} | ${fmt(median(xs))} | ${fmt(percentile(xs, 95))} |`
  const markdown = [
    `Wall time of a whole process, ${RUNS} runs each after two warm-up runs, spawned one after another. \`dist/physarum\` is the single executable (${fmt(sizeMb)} MB, a Node ${process.version} SEA with a V8 code cache).`,
    '',
    '| command | median ms | p95 ms |',
    '|---|---|---|',
    row('`dist/physarum --version`', exe),
    row('`node bin/physarum --version` (from source)', source),
    row('`dist/physarum --help` (loads oclif)', help),
    row("`node -e 0` (Node's own start-up, the floor)", floor),
    '',
    `Target: \`--version\` ≤ 150 ms. The executable's \`--version\` costs ${fmt(median(exe) - median(floor))} ms above Node's bare start-up here.`,
    '',
    `Resident memory after ${IDLE_S} s idle (median of ${IDLE_RUNS} runs), an allocator (process runtime, no instance) and a proxy from \`dist/physarum\`, joined through a PSK on 127.0.0.1. Started cold: the executable's pages dropped from the page cache first, so it is paged in from disk as after a reboot. Last column: the same, started from a copy of the executable written in one go just before (as right after an install or a build).`,
    '',
    "| daemon | RSS MB | of which private (RssAnon) | of which the executable's file pages (RssFile) | peak RSS MB | just written: RSS (private + file) |",
    '|---|---|---|---|---|---|',
    ...(['allocator', 'proxy'] as const).map(
      k =>
        `| ${k} | ${fmt(mem[k].rss)} | ${fmt(mem[k].anon)} | ${fmt(mem[k].file)} | ${fmt(mem[k].peak)} | ${fmt(memWritten[k].rss)} (${fmt(memWritten[k].anon)} + ${fmt(memWritten[k].file)}) |`
    ),
    '',
    `Target: ≤ 60 MB each; not met. The file pages (${fmt(mem.allocator.file)} MB cold, ${fmt(memWritten.allocator.file)} MB from a file just written) are the executable's code and read-only data (Node itself, V8, ICU, the bundle): clean, shared by every physarum process on a host (the allocator, its proxies, its process-runtime instances of the demo app) and reclaimable under memory pressure; a bare \`node\` HTTP server maps ~36 MB of them. The private part is mostly the JavaScript heap: the bundle's source (${fmt(statSync(resolve(ROOT, 'dist/physarum.cjs')).size / 1048576, 1)} MB, which V8 keeps), the code and state of libp2p, undici, oclif and Ajv, and malloc's arenas (~5 MB). What keeps it down: the bundle leaves out what a daemon never runs (scripts/package.mjs: undici's fetch, WebSocket and cache; dockerode's BuildKit gRPC; ssh2 loads on first use), no string collation (the first \`localeCompare\` in a process reads ICU's collation data, 2 MB of file pages: oclif and libp2p's peer store are patched to sort by code units) and a lean start-up (src/cli/lean-start.ts): no young-generation growth and no TurboFan until the daemon is up; without it an idle daemon measured ~15 MB more at 20 s in about 2 runs of 5 (a young generation not yet shrunk back) and ~2.5 MB more in every run.`,
    '',
    `Node SEA against \`bun build --compile\` (bun ${BUN_VERSION}, from the npm registry) of the same bundle, side by side: an allocator and a proxy of each executable, a PSK, the demo app as a process; three 100 MB downloads through the proxy (median) and \`wrk -t2 -c32 -d5s\` of \`GET /hello\`.`,
    '',
    '| executable | size MB | `--version` ms | 100 MB through the hop, MB/s | req/s |',
    '|---|---|---|---|---|',
    movesRow('Node SEA (`dist/physarum`)', sea, sizeMb, exe),
    movesRow('bun --compile', viaBun, bunBuilt ? statSync(bunExe).size / 1048576 : 0, bunVersion),
    '',
    "Why the Node SEA: it runs the Node the tests run on, and libp2p's noise uses Node's native chacha20-poly1305 there; bun's crypto lacks that cipher, so noise falls back to pure JavaScript (and bun is a second runtime to trust for every Node API the daemons use)."
  ].join('\n')
  saveResult('startup', {
    title: 'The executable: start-up, idle memory, Node SEA vs bun',
    ranAt: new Date().toISOString(),
    machine: machine(),
    markdown,
    data: {
      sea,
      bun: viaBun,
      runs: RUNS,
      versionMs: median(exe),
      versionP95Ms: percentile(exe, 95),
      sourceVersionMs: median(source),
      helpMs: median(help),
      nodeFloorMs: median(floor),
      idleS: IDLE_S,
      allocator: mem.allocator,
      proxy: mem.proxy,
      written: memWritten,
      sizeMb
    }
  })
  process.stderr.write(markdown + '\n')
}
