// WebSocket through the whole path (client proxy → libp2p → allocator → app and back), with
// a real WebSocket server and client that nobody here wrote (the `ws` package): text and
// binary echo, pings, a 10 MB message, 1,000 messages in order, closes from either side, an idle
// open socket that keeps its instance from being culled, the 1001 of a drain, refusals
// before the app (unknown app, CONNECT) as plain HTTP answers, and the metric of open sockets.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { startAllocator, startProxy, addrOf, waitFor, REPO } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '7'.repeat(64)
const dir = mkdtempSync(join(tmpdir(), 'physarum-ws-'))
// The app: ws's own server behind a plain HTTP health check; it first tells what it saw of
// the upgrade request, then echoes every message as it came ("close-me" makes it close).
const APP = join(dir, 'ws-echo.cjs')
writeFileSync(
  APP,
  `const http = require('node:http')
const { WebSocketServer } = require(${JSON.stringify(resolve(REPO, 'node_modules/ws'))})
const server = http.createServer((req, res) => res.end('ok\\n'))
const wss = new WebSocketServer({ server, maxPayload: 64 << 20 })
wss.on('connection', (ws, req) => {
  ws.send(JSON.stringify({ url: req.url, via: req.headers.via, xff: req.headers['x-forwarded-for'] }))
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-me') return ws.close(4001, 'asked to')
    ws.send(data, { binary: isBinary })
  })
})
server.listen(Number(process.env.PORT), '127.0.0.1')
`
)
const wsApp = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  Command: [process.execPath, APP],
  Health: { Path: '/healthz' },
  IdleTimeoutS: 300,
  ...over
})

/** A client connection and every message it gets, in order; `next()` waits for the next one. */
interface Client {
  ws: WebSocket
  next: () => Promise<{ data: Buffer; binary: boolean }>
  closed: Promise<{ code: number; reason: string }>
}

async function open(url: string): Promise<Client> {
  const ws = new WebSocket(url, { maxPayload: 64 << 20 })
  const queue: Array<{ data: Buffer; binary: boolean }> = []
  const waiting: Array<(m: { data: Buffer; binary: boolean }) => void> = []
  ws.on('message', (data: Buffer, binary: boolean) => {
    const m = { data, binary }
    const w = waiting.shift()
    if (w !== undefined) w(m)
    else queue.push(m)
  })
  const closed = new Promise<{ code: number; reason: string }>(resolve => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
    })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve()
    })
    ws.once('error', reject)
  })
  const next = async (): Promise<{ data: Buffer; binary: boolean }> =>
    queue.length > 0 ? (queue.shift() as { data: Buffer; binary: boolean }) : await new Promise(r => waiting.push(r))
  return { ws, next, closed }
}

describe('WebSocket through physarum', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let base: string

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: { echo: wsApp(), brief: wsApp({ IdleTimeoutS: 1 }) },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 8,
        MemoryMB: 2048,
        DrainTimeoutS: 1,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)] })
    base = `ws://${proxy.address}`
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
  })

  after(async () => {
    await proxy.stop()
    await alloc.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('the upgrade reaches the app with its path and the hops named; text and binary echo', async () => {
    const c = await open(`${base}/echo/chat?room=1`)
    const seen = JSON.parse((await c.next()).data.toString()) as { url: string; via: string; xff: string }
    assert.equal(seen.url, '/chat?room=1')
    assert.equal(seen.via, '1.1 physarum, 1.1 physarum', 'both hops in Via')
    assert.equal(seen.xff, '127.0.0.1, 127.0.0.1')
    c.ws.send('héllo')
    const text = await c.next()
    assert.equal(text.binary, false)
    assert.equal(text.data.toString(), 'héllo')
    const bytes = randomBytes(1000)
    c.ws.send(bytes)
    const bin = await c.next()
    assert.equal(bin.binary, true)
    assert.ok(bin.data.equals(bytes))
    // A ping from the client gets the app's pong (ws answers pings itself), its payload intact.
    const pong = new Promise<Buffer>(resolve => c.ws.once('pong', resolve))
    c.ws.ping(Buffer.from('are you there'))
    assert.equal((await pong).toString(), 'are you there')
    c.ws.close(1000, 'bye')
    assert.deepEqual(await c.closed, { code: 1000, reason: 'bye' }, 'a client-initiated close is echoed by the app')
  })

  test('a 10 MB message and 1,000 small ones arrive whole and in order', async () => {
    const c = await open(`${base}/echo/`)
    await c.next()
    const big = randomBytes(10 << 20)
    c.ws.send(big)
    const back = await c.next()
    assert.equal(createHash('sha256').update(back.data).digest('hex'), createHash('sha256').update(big).digest('hex'))
    for (let i = 0; i < 1000; i++) c.ws.send(`m${i}`)
    for (let i = 0; i < 1000; i++) assert.equal((await c.next()).data.toString(), `m${i}`)
    c.ws.close()
    await c.closed
  })

  test('a server-initiated close reaches the client with its code and reason', async () => {
    const c = await open(`${base}/echo/`)
    await c.next()
    c.ws.send('close-me')
    assert.deepEqual(await c.closed, { code: 4001, reason: 'asked to' })
  })

  test('an idle open socket keeps its instance from being culled; once it closes, the instance goes', async () => {
    const c = await open(`${base}/brief/`)
    await c.next()
    const metrics = await proxy.agent.metrics.registry.metrics()
    assert.match(metrics, /physarum_proxy_upgraded_connections\{app="brief"\} 1/)
    // IdleTimeoutS is 1: idle for three times that, with the socket open.
    await sleep(3000)
    assert.equal(alloc.manager.readyOf('brief').length, 1, 'not culled while a socket is open')
    c.ws.send('still here')
    assert.equal((await c.next()).data.toString(), 'still here')
    c.ws.close()
    await c.closed
    await waitFor('culled once idle', () => alloc.manager.readyOf('brief').length === 0, 10000)
  })

  test('refusals before the app are plain HTTP answers: an unknown app 404, a malformed name 400, CONNECT 501', async () => {
    for (const [path, status] of [
      ['/no-such-app/', 404],
      ['/Bad_Name/', 400]
    ] as const) {
      const ws = new WebSocket(`${base}${path}`)
      const got = await new Promise<number>(resolve => {
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0)
        })
        ws.on('error', () => {})
      })
      assert.equal(got, status, path)
    }
    const [host, port] = proxy.address.split(':')
    const s = connect(Number(port), host)
    s.write('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n')
    let answer = ''
    s.on('data', (d: Buffer) => {
      answer += d.toString()
    })
    await new Promise(resolve => s.once('close', resolve))
    assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n/)
    assert.match(answer, /"code":"NOT_SUPPORTED"/)
  })

  test('hostile: malformed upgrades get an answer or a close, a flood of 200 sockets is served and released', async () => {
    const [host, port] = proxy.address.split(':')
    const raw = async (bytes: string): Promise<string> => {
      const s = connect(Number(port), host)
      s.on('error', () => {})
      let got = ''
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1')
      })
      s.write(bytes)
      const closed = new Promise(resolve => s.once('close', resolve))
      await Promise.race([closed, sleep(3000)])
      s.destroy()
      return got
    }
    const up = 'Upgrade: websocket\r\nConnection: Upgrade\r\n'
    const cases: Array<[string, RegExp]> = [
      // No Sec-WebSocket-Key: the app (ws) refuses it, and its answer comes back.
      [`GET /echo/ HTTP/1.1\r\nHost: p\r\n${up}Sec-WebSocket-Version: 13\r\n\r\n`, /^HTTP\/1\.1 400 /],
      [`GET /Bad%00/ HTTP/1.1\r\nHost: p\r\n${up}\r\n`, /^HTTP\/1\.1 400 /],
      [`GET * HTTP/1.1\r\nHost: p\r\n${up}\r\n`, /^HTTP\/1\.1 400 /],
      [`GET /echo/ HTTP/1.1\r\nHost: p\r\n${up}X-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`, /^(HTTP\/1\.1 431 |$)/],
      // A valid upgrade followed by garbage where frames belong: the app closes it.
      [
        `GET /echo/ HTTP/1.1\r\nHost: p\r\n${up}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\xff\xff\xff\xff garbage`,
        /^HTTP\/1\.1 101 /
      ]
    ]
    for (const [bytes, expected] of cases) assert.match(await raw(bytes), expected, JSON.stringify(bytes.slice(0, 80)))
    const clients = await Promise.all(Array.from({ length: 200 }, async () => await open(`${base}/echo/`)))
    await Promise.all(
      clients.map(async (c, i) => {
        await c.next()
        c.ws.send(`n${i}`)
        assert.equal((await c.next()).data.toString(), `n${i}`)
        c.ws.terminate()
      })
    )
    await waitFor(
      'every socket released on both sides',
      () => proxy.entrypoint.inFlight === 0 && alloc.manager.inFlight() === 0,
      10000
    )
    const ok = await open(`${base}/echo/`)
    await ok.next()
    ok.ws.close()
    await ok.closed
  })

  test('a drain waits for open sockets up to the grace, then closes them with 1001', async () => {
    const other = await startAllocator({
      Psk: PSK,
      Bootstraps: [addrOf(alloc.agent)],
      Apps: { solo: wsApp() },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 2,
        MemoryMB: 1024,
        DrainTimeoutS: 1,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    try {
      await waitFor(
        'the proxy sees the second allocator',
        () => proxy.agent.membership.table.get(other.agent.peer)?.status === 'alive'
      )
      const c = await open(`${base}/solo/`)
      await c.next()
      const t0 = Date.now()
      const stopping = other.stop()
      const closed = await c.closed
      assert.equal(closed.code, 1001, 'going away')
      assert.ok(Date.now() - t0 >= 900, `the drain waited for the socket (${Date.now() - t0} ms)`)
      await stopping
    } finally {
      await other.stop()
    }
  })
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
