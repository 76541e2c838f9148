// Traffic beyond plain HTTP/1.1, side by side in one run: WebSocket echo (ws) and gRPC unary
// calls (@grpc/grpc-js), each directly to the app and through physarum (client proxy → libp2p
// → allocator → app, each a real process); gRPC through nginx's grpc_pass too when nginx is
// installed. WebSocket: messages/s with a window of messages in flight, and the round trip
// of one message at a time (p50/p99). gRPC: calls/s with calls in flight, and one call at a
// time (p50/p99).
import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import WebSocket from 'ws'
import { reservePort } from '../src/allocator/runtime/process.js'
import { ROOT, fmt, machine, median, percentile, saveResult, startTracked, waitLine } from './lib.js'

/** Seconds of each measured run (a window run and a one-at-a-time run per path). */
const SECONDS = Number(process.env.BENCH_TRAFFIC_SECONDS ?? 5)
/** Messages or calls in flight in the throughput runs. */
const WINDOW = 32
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

/** Messages/s with WINDOW in flight, and the round trips of one message at a time (ms). */
async function wsBench(url: string): Promise<{ rate: number; p50: number; p99: number }> {
  const ws = await wsOpen(url)
  const msg = Buffer.alloc(64, 1)
  let got = 0
  let stop = false
  const t0 = performance.now()
  await new Promise<void>(resolve => {
    ws.on('message', () => {
      got++
      if (!stop) ws.send(msg)
      else if (--inFlight === 0) resolve()
    })
    let inFlight = WINDOW
    for (let i = 0; i < WINDOW; i++) ws.send(msg)
    setTimeout(() => {
      stop = true
    }, SECONDS * 1000)
  })
  const rate = got / ((performance.now() - t0) / 1000)
  ws.removeAllListeners('message')
  const lat: number[] = []
  const end = performance.now() + SECONDS * 1000
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
  ws.close()
  return { rate, p50: median(lat), p99: percentile(lat, 99) }
}

type UnaryClient = grpc.Client & { unary: (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void }

/** Calls/s with WINDOW in flight, and one call at a time (ms). */
async function grpcBench(address: string, authority?: string): Promise<{ rate: number; p50: number; p99: number }> {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo')
  const c = new Client(
    address,
    grpc.credentials.createInsecure(),
    authority !== undefined ? { 'grpc.default_authority': authority } : {}
  ) as unknown as UnaryClient
  const call = async (): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      c.unary({ msg: 'x'.repeat(64) }, e => {
        if (e !== null) reject(e)
        else resolve()
      })
    })
  }
  for (let i = 0; i < 200; i++) await call() // warm-up (and the cold start)
  let n = 0
  const t0 = performance.now()
  const end = t0 + SECONDS * 1000
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (performance.now() < end) {
        await call()
        n++
      }
    })
  )
  const rate = n / ((performance.now() - t0) / 1000)
  const lat: number[] = []
  const end2 = performance.now() + SECONDS * 1000
  while (performance.now() < end2) {
    const s = performance.now()
    await call()
    lat.push(performance.now() - s)
  }
  c.close()
  return { rate, p50: median(lat), p99: percentile(lat, 99) }
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-bench-traffic-'))
  try {
    const apps = APPS(dir)
    const [wsPort, grpcPort] = [await reservePort(), await reservePort()]
    start(process.execPath, [apps.ws], { PORT: String(wsPort) })
    start(process.execPath, [apps.grpc], { PORT: String(grpcPort) })
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
    const env = { PHYSARUM_PSK: 'physarum traffic benchmark' }
    const bin = join(ROOT, 'bin/physarum')
    const common = ['--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0', '--log-level', 'info']
    const alloc = start(process.execPath, [bin, 'allocator', ...common], env)
    const addr = (await waitLine(alloc, /listening on (\/ip4\/127\.0\.0\.1\/\S+)/))[1]
    const proxyPort = await reservePort()
    const proxy = start(
      process.execPath,
      [bin, 'proxy', ...common, '--port', String(proxyPort), '--bootstrap', addr],
      env
    )
    await waitLine(proxy, /proxy listening/)
    await sleep(1500) // the proxy hears the allocator's announcement
    // The cold start of the WebSocket app, before anything is measured.
    for (let i = 0; ; i++) {
      try {
        ;(await wsOpen(`ws://127.0.0.1:${proxyPort}/ws/`)).close()
        break
      } catch (err) {
        if (i > 100) throw err
        await sleep(200)
      }
    }

    const ws = {
      direct: await wsBench(`ws://127.0.0.1:${wsPort}/`),
      physarum: await wsBench(`ws://127.0.0.1:${proxyPort}/ws/`)
    }
    const g: Record<string, { rate: number; p50: number; p99: number }> = {
      direct: await grpcBench(`127.0.0.1:${grpcPort}`),
      physarum: await grpcBench(`127.0.0.1:${proxyPort}`, 'echo')
    }
    let nginxNote = ''
    if (spawnSync('sh', ['-c', 'command -v nginx'], { stdio: 'ignore' }).status === 0) {
      const n = await reservePort()
      mkdirSync(join(dir, 'nginx/logs'), { recursive: true })
      writeFileSync(
        join(dir, 'nginx/nginx.conf'),
        `worker_processes 1; pid ${join(dir, 'nginx/nginx.pid')}; error_log ${join(dir, 'nginx/logs/error.log')} warn; daemon off; user root;
events { worker_connections 4096; }
http { upstream g { server 127.0.0.1:${grpcPort}; keepalive 64; }
server { listen 127.0.0.1:${n} http2; access_log off; location / { grpc_pass grpc://g; } } }`
      )
      start('nginx', ['-p', join(dir, 'nginx'), '-c', join(dir, 'nginx/nginx.conf')])
      await sleep(500)
      g.nginx = await grpcBench(`127.0.0.1:${n}`)
    } else
      nginxNote =
        '\n\nnginx is not installed on this machine: its grpc_pass column is missing (`apt-get install nginx`).'

    const row = (name: string, r: { rate: number; p50: number; p99: number }, base: { rate: number; p50: number }) =>
      `| ${name} | ${fmt(r.rate)} | ${fmt((100 * r.rate) / base.rate)} % | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.p50 - base.p50, 3)} |`
    const head = (what: string): string =>
      `| | ${what}/s (${WINDOW} in flight) | of direct | p50 ms (one at a time) | p99 ms | added p50 ms |\n|---|---|---|---|---|---|`
    const markdown = `Each figure from ${SECONDS} s runs, every path side by side in one run; the app, the allocator and the proxy are each a real process, the clients (ws, @grpc/grpc-js) in the benchmark's process.

**WebSocket echo** (64-byte messages on one connection):

${head('messages')}
${row('direct to the app', ws.direct, ws.direct)}
${row('through physarum', ws.physarum, ws.direct)}

**gRPC unary** (64-byte JSON messages, one channel; through physarum by \`grpc.default_authority\` = the app):

${head('calls')}
${row('direct to the app', g.direct, g.direct)}
${row('through physarum', g.physarum, g.direct)}${g.nginx !== undefined ? `\n${row('through nginx grpc_pass', g.nginx, g.direct)}` : ''}

Targets: through physarum ≥ 50 % of direct for both, added p50 ≤ 1 ms.${nginxNote}`
    saveResult('traffic', {
      title: 'WebSocket and gRPC: direct vs physarum',
      ranAt: new Date().toISOString(),
      machine: machine(),
      markdown,
      data: { seconds: SECONDS, window: WINDOW, ws, grpc: g }
    })
    process.stdout.write(markdown + '\n')
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM')
    await sleep(1500)
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}
