// Traffic beyond plain HTTP/1.1, side by side in one run: WebSocket echo (ws) and gRPC unary
// calls (@grpc/grpc-js), each directly to the app and through physarum (client proxy → libp2p
// → allocator → app, each a real process); gRPC through nginx's grpc_pass too when nginx is
// installed. The same client code on every path, several connections with a window in flight
// (so that throughput is not only the latency of 4 hops against 2), a warm-up, interleaved
// rounds and medians: messages (calls)/s, the round trip of one at a time (p50/p99), and the
// CPU time and write system calls each process spends per message.
import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import WebSocket from 'ws'
import { reservePort } from '../src/allocator/runtime/process.js'
import { ROOT, cpuUs, fmt, machine, median, percentile, saveResult, startTracked, waitLine } from './lib.js'

/** Seconds of each throughput run (the one-at-a-time run after it takes half as long). */
const SECONDS = Number(process.env.BENCH_TRAFFIC_SECONDS ?? 4)
/** Interleaved rounds over the paths. */
const ROUNDS = Number(process.env.BENCH_TRAFFIC_ROUNDS ?? 3)
/** Seconds of each path's warm-up, not counted. */
const WARMUP_SECONDS = 2
/** Messages or calls in flight in the throughput runs, spread over CONNS connections (channels). */
const WINDOW = 32
const CONNS = 4
const procs: ChildProcess[] = []

const start = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess =>
  startTracked(procs, cmd, args, env)

const ser = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))
const de = (b: Buffer): unknown => JSON.parse(b.toString())
const SERVICE = {
  unary: {
    path: '/bench.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de
  }
}
const APPS = (dir: string): { ws: string; grpc: string } => {
  const ws = join(dir, 'ws-echo.cjs')
  writeFileSync(
    ws,
    `const http = require('node:http')
const { WebSocketServer } = require(${JSON.stringify(join(ROOT, 'node_modules/ws'))})
const server = http.createServer((req, res) => res.end('ok'))
new WebSocketServer({ server }).on('connection', ws => ws.on('message', (d, bin) => ws.send(d, { binary: bin })))
server.listen(Number(process.env.PORT), '127.0.0.1')
`
  )
  const g = join(dir, 'grpc-echo.cjs')
  writeFileSync(
    g,
    `const grpc = require(${JSON.stringify(join(ROOT, 'node_modules/@grpc/grpc-js'))})
const ser = v => Buffer.from(JSON.stringify(v)), de = b => JSON.parse(b.toString())
const s = new grpc.Server()
s.addService({ unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: ser,
  requestDeserialize: de, responseSerialize: ser, responseDeserialize: de } }, { unary: (call, cb) => cb(null, call.request) })
s.bindAsync('127.0.0.1:' + process.env.PORT, grpc.ServerCredentials.createInsecure(), e => { if (e) throw e })
`
  )
  return { ws, grpc: g }
}

async function wsOpen(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve()
    })
    ws.once('error', reject)
  })
  return ws
}

/** Write system calls a process has made (socket writes, mostly); NaN once it is gone. */
function writes(pid: number | undefined): number {
  try {
    return Number(/syscw: (\d+)/.exec(readFileSync(`/proc/${pid ?? 0}/io`, 'utf8'))?.[1] ?? NaN)
  } catch {
    return NaN
  }
}

/** Per-process CPU µs over a run: `who` names the processes on the path (the client is this process). */
async function metered(
  who: Record<string, number | undefined>,
  body: () => Promise<number>
): Promise<{ n: number; seconds: number; cpu: Record<string, number>; writes: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(who).map(([k, pid]) => [k, cpuUs(pid)]))
  const w0 = Object.fromEntries(Object.entries(who).map(([k, pid]) => [k, writes(pid)]))
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const n = await body()
  const seconds = (performance.now() - t0) / 1000
  const c = process.cpuUsage(c0)
  const cpu: Record<string, number> = { client: c.user + c.system }
  const w: Record<string, number> = {}
  for (const [k, pid] of Object.entries(who)) {
    cpu[k] = cpuUs(pid) - before[k]
    w[k] = writes(pid) - w0[k]
  }
  return { n, seconds, cpu, writes: w }
}

/** A path under test: a way to open a client for it, and the processes it crosses besides the client. */
interface Path<C> {
  name: string
  open: () => Promise<C>
  pids: () => Record<string, number | undefined>
}

interface Round {
  rate: number
  /** CPU µs per message (call) per process, in the throughput run. */
  cpuPerMsg: Record<string, number>
  /** Write system calls per message (call) per process, in the throughput run. */
  writesPerMsg: Record<string, number>
  /** The same in the one-at-a-time run. */
  oneCpuPerMsg: Record<string, number>
  oneWritesPerMsg: Record<string, number>
  lat: number[]
}

/** WINDOW messages in flight over CONNS connections for `seconds`: messages echoed. */
async function wsWindow(conns: WebSocket[], seconds: number): Promise<number> {
  const msg = Buffer.alloc(64, 1)
  let got = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(
    conns.map(
      async ws =>
        await new Promise<void>(resolve => {
          let inFlight = WINDOW / conns.length
          ws.on('message', () => {
            got++
            if (performance.now() < end) ws.send(msg)
            else if (--inFlight === 0) {
              ws.removeAllListeners('message')
              resolve()
            }
          })
          for (let i = 0; i < WINDOW / conns.length; i++) ws.send(msg)
        })
    )
  )
  return got
}

/** One message at a time on one connection for `seconds`: the round trips (ms). */
async function wsOneByOne(ws: WebSocket, seconds: number): Promise<number[]> {
  const msg = Buffer.alloc(64, 1)
  const lat: number[] = []
  const end = performance.now() + seconds * 1000
  while (performance.now() < end) {
    const s = performance.now()
    await new Promise<void>(resolve => {
      ws.once('message', () => {
        resolve()
      })
      ws.send(msg)
    })
    lat.push(performance.now() - s)
  }
  return lat
}

type UnaryClient = grpc.Client & { unary: (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void }

/** CONNS channels, each its own HTTP/2 connection (a local subchannel pool), to `address`. */
function grpcClients(address: string, authority?: string): UnaryClient[] {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo')
  return Array.from(
    { length: CONNS },
    () =>
      new Client(address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        ...(authority !== undefined ? { 'grpc.default_authority': authority } : {})
      }) as unknown as UnaryClient
  )
}

const unary = async (c: UnaryClient): Promise<void> => {
  await new Promise<void>((resolve, reject) => {
    c.unary({ msg: 'x'.repeat(64) }, e => {
      if (e !== null) reject(e)
      else resolve()
    })
  })
}

/** WINDOW calls in flight over the channels for `seconds`: calls done. */
async function grpcWindow(cs: UnaryClient[], seconds: number): Promise<number> {
  let n = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: WINDOW }, async (_, i) => {
      while (performance.now() < end) {
        await unary(cs[i % cs.length])
        n++
      }
    })
  )
  return n
}

async function grpcOneByOne(c: UnaryClient, seconds: number): Promise<number[]> {
  const lat: number[] = []
  const end = performance.now() + seconds * 1000
  while (performance.now() < end) {
    const s = performance.now()
    await unary(c)
    lat.push(performance.now() - s)
  }
  return lat
}

/**
 * ROUNDS rounds over every path, the order turned each round (so that no path always runs
 * first or last on a machine whose load drifts); each round a throughput run and a one-at-a-time run per path, after
 * a warm-up of each path that is not counted.
 */
async function compare<C>(
  paths: Array<Path<C>>,
  window: (c: C, s: number) => Promise<number>,
  oneByOne: (c: C, s: number) => Promise<number[]>,
  close: (c: C) => void
): Promise<Record<string, Round[]>> {
  const clients = new Map<string, C>()
  for (const p of paths) {
    const c = await p.open()
    clients.set(p.name, c)
    await window(c, WARMUP_SECONDS)
  }
  const out: Record<string, Round[]> = Object.fromEntries(paths.map(p => [p.name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < paths.length; i++) {
      const p = paths[(i + r) % paths.length]
      const c = clients.get(p.name) as C
      const m = await metered(p.pids(), async () => await window(c, SECONDS))
      let lat: number[] = []
      const m1 = await metered(p.pids(), async () => {
        lat = await oneByOne(c, SECONDS / 2)
        return lat.length
      })
      out[p.name].push({
        rate: m.n / m.seconds,
        cpuPerMsg: Object.fromEntries(Object.entries(m.cpu).map(([k, us]) => [k, us / m.n])),
        writesPerMsg: Object.fromEntries(Object.entries(m.writes).map(([k, w]) => [k, w / m.n])),
        oneCpuPerMsg: Object.fromEntries(Object.entries(m1.cpu).map(([k, us]) => [k, us / m1.n])),
        oneWritesPerMsg: Object.fromEntries(Object.entries(m1.writes).map(([k, w]) => [k, w / m1.n])),
        lat
      })
    }
  }
  for (const c of clients.values()) close(c)
  return out
}

interface Summary {
  rate: number
  p50: number
  p99: number
  cpuPerMsg: Record<string, number>
  writesPerMsg: Record<string, number>
  oneCpuPerMsg: Record<string, number>
  oneWritesPerMsg: Record<string, number>
  rounds: number[]
}

/** The median of each key over the records. */
function medians(rs: Array<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(rs[0] ?? {}).map(k => [k, median(rs.map(r => r[k]))]))
}

/** Medians over the rounds: of the rates, of each process's CPU per message; p50/p99 of every round trip. */
function summary(rounds: Round[]): Summary {
  const lat = rounds.flatMap(r => r.lat)
  return {
    rate: median(rounds.map(r => r.rate)),
    p50: median(lat),
    p99: percentile(lat, 99),
    cpuPerMsg: medians(rounds.map(r => r.cpuPerMsg)),
    writesPerMsg: medians(rounds.map(r => r.writesPerMsg)),
    oneCpuPerMsg: medians(rounds.map(r => r.oneCpuPerMsg)),
    oneWritesPerMsg: medians(rounds.map(r => r.oneWritesPerMsg)),
    rounds: rounds.map(r => r.rate)
  }
}

/** The pid of the child of `parent` whose command line contains `needle` (an app the allocator started). */
function childPid(parent: number | undefined, needle: string): number | undefined {
  try {
    for (const t of readdirSync(`/proc/${parent}/task`))
      for (const c of readFileSync(`/proc/${parent}/task/${t}/children`, 'utf8').trim().split(/\s+/))
        if (c !== '' && readFileSync(`/proc/${c}/cmdline`, 'utf8').includes(needle)) return Number(c)
  } catch {}
  return undefined
}

/**
 * Where the time of the physarum path goes: the figures of this run, and what CPU profiles of the proxy and the
 * allocator under these loads showed (BENCH_TRAFFIC_PROF=<dir>, BENCH_TRAFFIC_ONLY=ws|grpc).
 */
function whereTheTimeGoes(ws: Record<string, Summary>, g: Record<string, Summary>): string {
  const us = (r: Summary | undefined, k: string): string => fmt(r?.cpuPerMsg[k] ?? NaN)
  return `**Where the time goes.** On this machine's 2 cores every process on a path competes for the CPU, so the rate through physarum is bounded by the CPU its four processes spend per message, not by the hop's latency.

- WebSocket: direct, the client and the app spend ${us(ws.direct, 'client')} + ${us(ws.direct, 'app')} µs per message; through physarum the proxy adds ${us(ws.physarum, 'proxy')} µs and the host ${us(ws.physarum, 'host')} µs. After the 101 both splice the socket to the libp2p stream itself (src/forward/upgrade.ts): what is left per chunk is the libp2p hop — yamux framing, Noise's ChaCha20-Poly1305 and the private network's XSalsa20 on each side, and the TCP write system call, which profiles show as the largest single item (about a fifth of the busy time). Several messages in flight share a chunk (see the writes per message), one at a time each pays it all.
- gRPC: the proxy spends ${us(g.physarum, 'proxy')} µs and the host ${us(g.physarum, 'host')} µs per call${g.nginx !== undefined ? `, against nginx's ${us(g.nginx, 'nginx')} µs for the same relay in C` : ''}. A call crosses two HTTP/2 codecs in JavaScript (node:http2), the entrypoint's server session on the proxy and the session to the app on the host; between them the hop carries it in physarum's own framing (proto calls, src/forward/frames.ts and calls.ts: a 10-byte head per frame, JSON headers and trailers, a window per call), one libp2p stream per instance, and what one turn of the event loop wrote leaves as one libp2p message. In CPU profiles of both daemons under the 32-in-flight load (2026-12-04) the socket writes (writeBuffer) are 11–15 % of the busy time, V8 outside JavaScript ("program") 8–16 %, garbage collection 6–8 %, node:http2's JavaScript about 7 %, the libp2p hop (yamux, noise, pnet, uint8arraylist) about 8 %, and physarum's own code 8 % on the host and 15 % on the proxy (placement, the relay, the framing); on the host, node:http2's client request() binds an AsyncResource per call, which alone is 3 %. The app itself spends more per call behind physarum (${us(g.physarum, 'app')} against ${us(g.direct, 'app')} µs): its calls come over one HTTP/2 connection from the host instead of ${CONNS}, with the hop's headers (via, x-forwarded-*) as metadata; which of the two costs it was not measured.
- Lower would take the HTTP/2 codec off the host (its calls to the app in a codec of physarum's own, or a byte splice as for WebSocket, which would lose the per-call accounting and refusals) or fewer write system calls per call; the Noise and pnet ciphers and yamux are the libp2p hop's.`
}

export async function run(): Promise<void> {
  const load0 = loadavg()[0]
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-traffic-'))
  try {
    const apps = APPS(dir)
    const [wsPort, grpcPort] = [await reservePort(), await reservePort()]
    const wsApp = start(process.execPath, [apps.ws], { PORT: String(wsPort) })
    const grpcApp = start(process.execPath, [apps.grpc], { PORT: String(grpcPort) })
    const conf = join(dir, 'conf.json')
    writeFileSync(
      conf,
      JSON.stringify({
        Listen: ['/ip4/127.0.0.1/tcp/0'],
        Apps: {
          ws: { Command: [process.execPath, apps.ws], IdleTimeoutS: 3600, TargetConcurrency: 100000 },
          echo: {
            Command: [process.execPath, apps.grpc],
            Protocol: 'grpc',
            Health: { Tcp: true },
            IdleTimeoutS: 3600,
            TargetConcurrency: 100000
          }
        },
        Allocator: { Runtime: 'process' },
        Log: { Level: 'warn' }
      })
    )
    // BENCH_TRAFFIC_PROF=<dir>: the allocator and the proxy write V8 CPU profiles there when they stop.
    const prof = process.env.BENCH_TRAFFIC_PROF
    /** An allocator and a proxy of `bin` in a private network of their own, once the app answers through it. */
    const physarum = async (
      bin: string,
      psk: string
    ): Promise<{ port: number; proxy: ChildProcess; alloc: ChildProcess }> => {
      const env = { PHYSARUM_PSK: psk }
      const node = prof !== undefined ? ['--cpu-prof', '--cpu-prof-dir', prof, bin] : [bin]
      const common = ['--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0', '--log-level', 'info']
      const alloc = start(process.execPath, [...node, 'allocator', ...common], env)
      const addr = (await waitLine(alloc, /listening on (\/ip4\/127\.0\.0\.1\/\S+)/))[1]
      const port = await reservePort()
      // The libp2p hop, measured: this proxy shares the allocator's host, where it would take the local fast path.
      const proxy = start(
        process.execPath,
        [...node, 'proxy', ...common, '--port', String(port), '--bootstrap', addr],
        { ...env, PHYSARUM_LOCAL_FAST_PATH: '0' }
      )
      await waitLine(proxy, /proxy listening/)
      await sleep(1500) // the proxy hears the allocator's announcement
      // The cold start of the WebSocket app, before anything is measured.
      for (let i = 0; ; i++) {
        try {
          ;(await wsOpen(`ws://127.0.0.1:${port}/ws/`)).close()
          break
        } catch (err) {
          if (i > 100) throw err
          await sleep(200)
        }
      }
      return { port, proxy, alloc }
    }
    const { port: proxyPort, proxy, alloc } = await physarum(join(ROOT, 'bin/physarum'), 'physarum traffic benchmark')
    // BENCH_TRAFFIC_BASELINE=<bin/physarum of another build>: that build side by side too, for an A/B of a change.
    const baseBin = process.env.BENCH_TRAFFIC_BASELINE
    const base = baseBin !== undefined ? await physarum(baseBin, 'physarum traffic benchmark, the baseline') : undefined

    const wsConns = async (url: string): Promise<WebSocket[]> =>
      await Promise.all(Array.from({ length: CONNS }, async () => await wsOpen(url)))
    // BENCH_TRAFFIC_ONLY=ws or grpc: one half only (for a profile of it).
    const only = process.env.BENCH_TRAFFIC_ONLY
    const wsRounds =
      only === 'grpc'
        ? { direct: [], physarum: [] }
        : await compare<WebSocket[]>(
            [
              {
                name: 'direct',
                open: async () => await wsConns(`ws://127.0.0.1:${wsPort}/`),
                pids: () => ({ app: wsApp.pid })
              },
              {
                name: 'physarum',
                open: async () => await wsConns(`ws://127.0.0.1:${proxyPort}/ws/`),
                pids: () => ({ proxy: proxy.pid, host: alloc.pid, app: childPid(alloc.pid, 'ws-echo') })
              },
              ...(base === undefined
                ? []
                : [
                    {
                      name: 'baseline',
                      open: async () => await wsConns(`ws://127.0.0.1:${base.port}/ws/`),
                      pids: () => ({
                        proxy: base.proxy.pid,
                        host: base.alloc.pid,
                        app: childPid(base.alloc.pid, 'ws-echo')
                      })
                    }
                  ])
            ],
            wsWindow,
            async (cs, sec) => await wsOneByOne(cs[0], sec),
            cs => {
              for (const c of cs) c.close()
            }
          )
    const gPaths: Array<Path<UnaryClient[]>> = [
      { name: 'direct', open: async () => grpcClients(`127.0.0.1:${grpcPort}`), pids: () => ({ app: grpcApp.pid }) },
      {
        name: 'physarum',
        open: async () => grpcClients(`127.0.0.1:${proxyPort}`, 'echo'),
        pids: () => ({ proxy: proxy.pid, host: alloc.pid, app: childPid(alloc.pid, 'grpc-echo') })
      }
    ]
    if (base !== undefined)
      gPaths.push({
        name: 'baseline',
        open: async () => grpcClients(`127.0.0.1:${base.port}`, 'echo'),
        pids: () => ({ proxy: base.proxy.pid, host: base.alloc.pid, app: childPid(base.alloc.pid, 'grpc-echo') })
      })
    let nginxNote = ''
    if (spawnSync('sh', ['-c', 'command -v nginx'], { stdio: 'ignore' }).status === 0) {
      const n = await reservePort()
      mkdirSync(join(dir, 'nginx/logs'), { recursive: true })
      // One process (no master): its CPU is the relay's, like the proxy's.
      writeFileSync(
        join(dir, 'nginx/nginx.conf'),
        `worker_processes 1; master_process off; pid ${join(dir, 'nginx/nginx.pid')}; error_log ${join(dir, 'nginx/logs/error.log')} warn; daemon off;
events { worker_connections 4096; }
http { upstream g { server 127.0.0.1:${grpcPort}; keepalive 64; }
server { listen 127.0.0.1:${n} http2; access_log off; location / { grpc_pass grpc://g; } } }`
      )
      const ngx = start('nginx', ['-p', join(dir, 'nginx'), '-c', join(dir, 'nginx/nginx.conf')])
      await sleep(500)
      gPaths.push({
        name: 'nginx',
        open: async () => grpcClients(`127.0.0.1:${n}`),
        pids: () => ({ nginx: ngx.pid, app: grpcApp.pid })
      })
    } else
      nginxNote =
        '\n\nnginx is not installed on this machine: its grpc_pass row is missing (`apt-get install nginx-light`).'
    const gRounds =
      only === 'ws'
        ? { direct: [], physarum: [] }
        : await compare<UnaryClient[]>(
            gPaths,
            grpcWindow,
            async (cs, sec) => await grpcOneByOne(cs[0], sec),
            cs => {
              for (const c of cs) c.close()
            }
          )
    const ws = Object.fromEntries(Object.entries(wsRounds).map(([k, r]) => [k, summary(r)]))
    const g = Object.fromEntries(Object.entries(gRounds).map(([k, r]) => [k, summary(r)]))

    const each = (r: Record<string, number>, digits: number): string =>
      Object.entries(r)
        .map(([k, x]) => `${k} ${fmt(x, digits)}`)
        .join(', ')
    const row = (name: string, r: Summary, base: Summary): string =>
      `| ${name} | ${fmt(r.rate)} | ${fmt((100 * r.rate) / base.rate)} % | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.p50 - base.p50, 3)} | ${each(r.cpuPerMsg, 0)} | ${each(r.writesPerMsg, 2)} |`
    const oneRow = (name: string, r: Summary): string =>
      `| ${name} | ${each(r.oneCpuPerMsg, 0)} | ${each(r.oneWritesPerMsg, 2)} |`
    const oneHead = (what: string): string =>
      `One ${what} at a time (the p50 runs): | CPU µs per ${what} | writes per ${what} |\n|---|---|---|`
    const head = (what: string): string =>
      `| | ${what}/s (${WINDOW} in flight) | of direct | p50 ms (one at a time) | p99 ms | added p50 ms | CPU µs per ${what.replace(/s$/, '')} | writes per ${what.replace(/s$/, '')} |\n|---|---|---|---|---|---|---|---|`
    const spread = (r: Summary): string => r.rounds.map(x => fmt(x)).join(', ')
    const markdown = `${ROUNDS} interleaved rounds (the order of the paths turned each round, after a ${WARMUP_SECONDS} s warm-up of each); each round a ${SECONDS} s throughput run with ${WINDOW} messages or calls in flight over ${CONNS} connections (WebSocket) or ${CONNS} channels of their own HTTP/2 connection each (gRPC), then ${SECONDS / 2} s of one at a time on one of them. Rates and CPU are medians over the rounds, p50/p99 over every round trip. The app, the allocator and the proxy are each a real process; the clients (ws, @grpc/grpc-js) run in the benchmark's process, the same client code for every path. Load average (1 min) ${fmt(load0, 1)} at the start, ${fmt(loadavg()[0], 1)} at the end: other work on the machine shares its cores. Through physarum: client → proxy (entrypoint) → libp2p stream → allocator (the instance's host) → app; "host" below is the allocator. CPU µs per message (per call) is each process's user + system time in the throughput run over the messages it carried (from /proc, 10 ms ticks); writes per message are its write system calls (/proc/<pid>/io syscw) over the same messages, the client's not counted.

**WebSocket echo** (64-byte binary messages):

${head('messages')}
${row('direct to the app', ws.direct, ws.direct)}
${row('through physarum', ws.physarum, ws.direct)}${ws.baseline !== undefined ? `\n${row('through physarum (baseline build)', ws.baseline, ws.direct)}` : ''}

${oneHead('message')}
${oneRow('direct to the app', ws.direct)}
${oneRow('through physarum', ws.physarum)}${ws.baseline !== undefined ? `\n${oneRow('through physarum (baseline build)', ws.baseline)}` : ''}

Rates per round — direct: ${spread(ws.direct)}; physarum: ${spread(ws.physarum)}.

**gRPC unary** (64-byte JSON messages; through physarum by \`grpc.default_authority\` = the app):

${head('calls')}
${row('direct to the app', g.direct, g.direct)}
${row('through physarum', g.physarum, g.direct)}${g.baseline !== undefined ? `\n${row('through physarum (baseline build)', g.baseline, g.direct)}` : ''}${g.nginx !== undefined ? `\n${row('through nginx grpc_pass', g.nginx, g.direct)}` : ''}

${oneHead('call')}
${oneRow('direct to the app', g.direct)}
${oneRow('through physarum', g.physarum)}${g.baseline !== undefined ? `\n${oneRow('through physarum (baseline build)', g.baseline)}` : ''}${g.nginx !== undefined ? `\n${oneRow('through nginx grpc_pass', g.nginx)}` : ''}

Rates per round — direct: ${spread(g.direct)}; physarum: ${spread(g.physarum)}${g.nginx !== undefined ? `; nginx: ${spread(g.nginx)}` : ''}.

Targets: through physarum ≥ 50 % of direct for both, added p50 ≤ 1 ms.${nginxNote} Envoy is not packaged by Debian, so it has no row.

${whereTheTimeGoes(ws, g)}`
    saveResult('traffic', {
      title: 'WebSocket and gRPC: direct vs physarum',
      ranAt: new Date().toISOString(),
      machine: machine(),
      markdown,
      data: { seconds: SECONDS, rounds: ROUNDS, window: WINDOW, conns: CONNS, ws, grpc: g }
    })
    process.stdout.write(markdown + '\n')
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM')
    await sleep(1500)
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}
