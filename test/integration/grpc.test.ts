// gRPC and HTTP/2 through the whole path (client proxy → libp2p → allocator → app and back),
// with a real gRPC server and client that nobody here wrote (@grpc/grpc-js, a hand-written
// service definition with JSON messages): unary, server-, client- and bidi-streaming, a status
// error with its message and metadata in trailers, an expiring deadline and a cancelled call
// that the app sees cancelled, an unknown app as a gRPC status; curl --http2-prior-knowledge
// (and HTTP/1.1 curl) to an h2c app that sees HTTP/2; and the hostile cases: a rapid-reset
// burst (CVE-2023-44487's pattern) and a header-block bomb leave the proxy serving.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { connect as h2connect, constants as h2c } from 'node:http2'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import { startAllocator, startProxy, addrOf, waitFor, REPO } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const run = promisify(execFile)
const PSK = '9'.repeat(64)
const dir = mkdtempSync(join(tmpdir(), 'physarum-grpc-'))

// One service definition for the app and the client: JSON messages, the four kinds of call.
const SERVICE_SRC = `
const ser = v => Buffer.from(JSON.stringify(v))
const de = b => JSON.parse(b.toString())
const def = (name, requestStream, responseStream) => ({ path: '/echo.Echo/' + name, requestStream, responseStream,
  requestSerialize: ser, requestDeserialize: de, responseSerialize: ser, responseDeserialize: de })
module.exports = {
  unary: def('Unary', false, false), serverStream: def('ServerStream', false, true),
  clientStream: def('ClientStream', true, false), bidi: def('Bidi', true, true),
  fail: def('Fail', false, false), slow: def('Slow', false, false), stats: def('Stats', false, false)
}
`
writeFileSync(join(dir, 'service.cjs'), SERVICE_SRC)
const APP = join(dir, 'grpc-app.cjs')
writeFileSync(
  APP,
  `const grpc = require(${JSON.stringify(resolve(REPO, 'node_modules/@grpc/grpc-js'))})
const service = require('./service.cjs')
let cancelled = 0
const server = new grpc.Server()
server.addService(service, {
  unary: (call, cb) => cb(null, { msg: call.request.msg, trace: call.metadata.get('x-trace')[0] ?? null,
    via: call.metadata.get('via')[0] ?? null }),
  serverStream: call => { for (let i = 0; i < call.request.n; i++) call.write({ i }); call.end() },
  clientStream: (call, cb) => { const got = []; call.on('data', d => got.push(d.msg)); call.on('end', () => cb(null, { got })) },
  bidi: call => { call.on('data', d => call.write({ echo: d.msg })); call.on('end', () => call.end()) },
  fail: (call, cb) => { const md = new grpc.Metadata(); md.set('x-reason', 'because'); md.set('x-bin-bin', Buffer.from([1, 2, 3]))
    cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not today: ünïcode', metadata: md }) },
  slow: (call, cb) => { const t = setTimeout(() => cb(null, {}), 10000); call.on('cancelled', () => { clearTimeout(t); cancelled++ }) },
  stats: (call, cb) => cb(null, { cancelled })
})
server.bindAsync('127.0.0.1:' + process.env.PORT, grpc.ServerCredentials.createInsecure(), err => { if (err) throw err })
`
)
// An h2c app that is not gRPC: it says which HTTP it was spoken to in, and streams its answer.
const H2APP = join(dir, 'h2-app.cjs')
writeFileSync(
  H2APP,
  `const http2 = require('node:http2')
const server = http2.createServer((req, res) => {
  if (req.url === '/slow') return setTimeout(() => res.end('late'), 5000)
  if (req.url === '/echo') return req.pipe(res)
  res.setHeader('content-type', 'text/plain')
  res.end('http ' + req.httpVersion + ' ' + req.method + ' ' + req.url + ' via ' + req.headers.via + '\\n')
})
server.listen(Number(process.env.PORT), '127.0.0.1')
`
)

const service = (await import(join(dir, 'service.cjs'))).default as grpc.ServiceDefinition
const Client = grpc.makeGenericClientConstructor(service, 'Echo')
type Any = Record<string, unknown>
type Unary = (
  req: Any,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: Any) => void
) => grpc.ClientUnaryCall

function client(address: string, authority: string): grpc.Client & Record<string, Unary> {
  return new Client(address, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority
  }) as unknown as grpc.Client & Record<string, Unary>
}

async function unary(
  c: Record<string, Unary>,
  method: string,
  req: Any,
  opts: grpc.CallOptions = {},
  md = new grpc.Metadata()
): Promise<{ res?: Any; err?: grpc.ServiceError }> {
  return await new Promise(resolve => {
    c[method](req, md, opts, (err, res) => {
      resolve(err !== null ? { err } : { res })
    })
  })
}

describe('gRPC and HTTP/2 through physarum', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let c: grpc.Client & Record<string, Unary>

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: {
        echo: { Command: [process.execPath, APP], Protocol: 'grpc', Health: { Tcp: true }, IdleTimeoutS: 300 },
        h2app: { Command: [process.execPath, H2APP], Protocol: 'h2c', Health: { Tcp: true }, IdleTimeoutS: 300 }
      },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 4,
        MemoryMB: 1024,
        DrainTimeoutS: 1,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    // The proxy's own catalog knows the h2c app (its HTTP/2 clients then go on as HTTP/2) and its timeout; of the gRPC
    // app it knows nothing (a gRPC call goes on as HTTP/2 by its content-type).
    proxy = await startProxy({
      Psk: PSK,
      Bootstraps: [addrOf(alloc.agent)],
      Apps: { h2app: { Protocol: 'h2c', RequestTimeoutS: 1.5 } }
    })
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
    c = client(proxy.address, 'echo')
  })

  after(async () => {
    c.close()
    await proxy.stop()
    await alloc.stop()
  })

  test('unary: the answer, and the metadata reaching the app (by :authority, a cold start first)', async () => {
    const md = new grpc.Metadata()
    md.set('x-trace', 'abc123')
    const { res, err } = await unary(c, 'unary', { msg: 'hello' }, { deadline: Date.now() + 20000 }, md)
    assert.equal(err, undefined, err?.message)
    assert.deepEqual(res, { msg: 'hello', trace: 'abc123', via: '1.1 physarum, 1.1 physarum' })
    // '<app>.physarum' names it too.
    const c2 = client(proxy.address, 'echo.physarum:50051')
    const again = await unary(c2, 'unary', { msg: 'again' })
    c2.close()
    assert.equal(again.res?.msg, 'again')
  })

  test('server streaming: 500 messages in order', async () => {
    const got: number[] = []
    const call = (c as unknown as Record<string, (r: Any) => grpc.ClientReadableStream<Any>>).serverStream({ n: 500 })
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: { i: number }) => got.push(m.i))
      call.on('end', resolve)
      call.on('error', reject)
    })
    assert.deepEqual(
      got,
      Array.from({ length: 500 }, (_, i) => i)
    )
  })

  test('client streaming: every message reaches the app before it answers', async () => {
    const res = await new Promise<Any>((resolve, reject) => {
      const call = (
        c as unknown as Record<string, (cb: (e: Error | null, r: Any) => void) => grpc.ClientWritableStream<Any>>
      ).clientStream((e, r) => {
        if (e !== null) reject(e)
        else resolve(r)
      })
      for (let i = 0; i < 50; i++) call.write({ msg: `m${i}` })
      call.end()
    })
    assert.deepEqual(
      res.got,
      Array.from({ length: 50 }, (_, i) => `m${i}`)
    )
  })

  test('bidi streaming: each answer comes back before the next message is sent (full duplex)', async () => {
    const call = (c as unknown as Record<string, () => grpc.ClientDuplexStream<Any, Any>>).bidi()
    const answers: Any[] = []
    for (let i = 0; i < 20; i++) {
      const next = new Promise<Any>(r => call.once('data', r))
      call.write({ msg: i })
      answers.push(await next)
    }
    call.end()
    await new Promise(r => call.on('end', r))
    assert.deepEqual(
      answers,
      Array.from({ length: 20 }, (_, i) => ({ echo: i }))
    )
  })

  test("a status error: code, message and metadata from the app's trailers", async () => {
    const { err } = await unary(c, 'fail', {})
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION)
    assert.equal(err?.details, 'not today: ünïcode')
    assert.deepEqual(err?.metadata.get('x-reason'), ['because'])
    assert.deepEqual(err?.metadata.get('x-bin-bin'), [Buffer.from([1, 2, 3])])
  })

  test('a deadline that expires, and a cancelled call: the app sees both cancelled', async () => {
    const before = (await unary(c, 'stats', {})).res?.cancelled as number
    const t0 = Date.now()
    const { err } = await unary(c, 'slow', {}, { deadline: Date.now() + 300 })
    assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED)
    assert.ok(Date.now() - t0 < 3000)
    await waitFor('the app saw the expired call cancelled (grpc-timeout went on)', async () => {
      const n = (await unary(c, 'stats', {})).res?.cancelled as number
      return n >= before + 1
    })
    const cancelled = await new Promise<grpc.ServiceError>(resolve => {
      const call = c.slow({}, new grpc.Metadata(), {}, e => {
        if (e !== null) resolve(e)
      })
      setTimeout(() => call.cancel(), 300)
    })
    assert.equal(cancelled.code, grpc.status.CANCELLED)
    await waitFor(
      'the app saw the cancelled call cancelled (RST_STREAM went on)',
      async () => {
        const n = (await unary(c, 'stats', {})).res?.cancelled as number
        return n >= before + 2
      },
      3000
    )
  })

  test('an unknown app is NOT_FOUND, a malformed name INTERNAL, both as gRPC statuses', async () => {
    const nobody = client(proxy.address, 'nosuch.physarum')
    const { err } = await unary(nobody, 'unary', { msg: 'x' })
    nobody.close()
    assert.equal(err?.code, grpc.status.NOT_FOUND)
    assert.match(err?.details ?? '', /UNKNOWN_APP: unknown app nosuch/)
    // No app in its authority, and its path /echo.Echo/Unary names none (uppercase).
    const bare = client(proxy.address, '127.0.0.1')
    const bad = await unary(bare, 'unary', { msg: 'x' })
    bare.close()
    assert.equal(bad.err?.code, grpc.status.INTERNAL)
    assert.match(bad.err?.details ?? '', /BAD_APP_NAME/)
  })

  test('curl --http2-prior-knowledge, and HTTP/1.1 curl, to an h2c app that is spoken to in HTTP/2', async () => {
    const h2 = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--http2-prior-knowledge',
      '-w',
      '%{http_version}',
      `http://${proxy.address}/h2app/hi?x=1`
    ])
    assert.equal(h2.stdout, 'http 2.0 GET /hi?x=1 via 1.1 physarum, 1.1 physarum\n2')
    const h1 = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '-X',
      'PUT',
      '-d',
      'body',
      `http://${proxy.address}/h2app/put`
    ])
    assert.match(h1.stdout, /^http 2\.0 PUT \/put via/)
  })

  test('an 8 MB h2c upload echoed back, read by a slow curl: whole, in order (windows and back-pressure both ways)', async () => {
    const body = randomBytes(8 * 1024 * 1024)
    const src = join(dir, 'big.bin')
    const out = join(dir, 'big.out')
    writeFileSync(src, body)
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '60',
      '--http2-prior-knowledge',
      '--limit-rate',
      '4M',
      '--data-binary',
      `@${src}`,
      '-o',
      out,
      '-w',
      '%{http_code} %{size_download}',
      `http://${proxy.address}/h2app/echo`
    ])
    assert.equal(r.stdout, `200 ${body.length}`, r.stderr)
    assert.ok(readFileSync(out).equals(body), 'the same bytes')
  })

  test("a server-mode proxy's user-run gRPC instance: reached from that proxy and through another one", async () => {
    const port = await reservePort()
    const child = spawn(process.execPath, [APP], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' })
    const apps = { mine: { Protocol: 'grpc' as const, Port: port, Health: { Tcp: true } } }
    const server = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)], Apps: apps }, { app: 'mine' })
    try {
      await waitFor('the user-run instance is seen by the other proxy', () =>
        proxy.placement.endpoints('mine').some(e => e.peer === server.agent.peer)
      )
      const local = client(server.address, 'mine')
      const remote = client(proxy.address, 'mine')
      const a = await unary(local, 'unary', { msg: 'local' }, { deadline: Date.now() + 10000 })
      const b = await unary(remote, 'unary', { msg: 'remote' }, { deadline: Date.now() + 10000 })
      local.close()
      remote.close()
      assert.equal(a.res?.msg, 'local', a.err?.message)
      assert.equal(a.res?.via, '1.1 physarum', 'its own instance directly: one hop')
      assert.equal(b.res?.msg, 'remote', b.err?.message)
      assert.equal(b.res?.via, '1.1 physarum, 1.1 physarum', 'over the hop to the server-mode proxy')
    } finally {
      await server.stop()
      child.kill()
    }
  })

  test("an h2c app that does not answer within its RequestTimeoutS: 504, and the app's stream cancelled", async () => {
    const t0 = Date.now()
    const r = await run('curl', [
      ...['-sS', '--max-time', '20', '--http2-prior-knowledge', '-w', ' %{http_code}'],
      `http://${proxy.address}/h2app/slow`
    ])
    assert.match(r.stdout, /"code":"UPSTREAM_TIMEOUT".* 504$/s)
    assert.ok(Date.now() - t0 < 4000, `answered after ${Date.now() - t0} ms`)
  })

  test("HTTP/2's CONNECT gets the same 501 and reason as HTTP/1.1's", async () => {
    const s = h2connect(`http://${proxy.address}`)
    s.on('error', () => {})
    const got = await new Promise<string>((resolve, reject) => {
      const r = s.request({ ':method': 'CONNECT', ':authority': 'example.com:443' })
      let status = ''
      let body = ''
      r.on('response', h => (status = String(h[':status'])))
      r.on('data', (d: Buffer) => (body += d.toString()))
      r.on('end', () => {
        resolve(`${status} ${body}`)
      })
      r.on('error', reject)
    })
    s.close()
    assert.match(got, /^501 \{"error":\{"code":"NOT_SUPPORTED","message":"CONNECT is not supported/)
  })

  test('hostile: a rapid-reset burst and a header-block bomb leave the proxy serving, memory bounded', async () => {
    const stillServing = async (when: string): Promise<void> => {
      const ok = await run('curl', [
        '-sS',
        '--max-time',
        '10',
        '--http2-prior-knowledge',
        `http://${proxy.address}/h2app/after`
      ])
      assert.match(ok.stdout, /^http 2\.0 GET \/after/, when)
      assert.equal(
        (await unary(c, 'unary', { msg: 'still' }, { deadline: Date.now() + 10000 })).res?.msg,
        'still',
        when
      )
    }
    global.gc?.()
    const rss0 = process.memoryUsage().rss
    // CVE-2023-44487's pattern: streams opened and reset at once, thousands of them.
    const s = h2connect(`http://${proxy.address}`)
    s.on('error', () => {})
    await new Promise(r => s.once('connect', r))
    for (let i = 0; i < 5000 && !s.closed && !s.destroyed; i++) {
      const req = s.request({ ':path': '/h2app/slow', ':authority': 'h2app' })
      req.on('error', () => {})
      req.close(h2c.NGHTTP2_CANCEL)
    }
    await new Promise(r => setTimeout(r, 1000))
    s.destroy()
    await stillServing('after the rapid reset')
    // A header block of 4 MB in one request.
    const bomb = h2connect(`http://${proxy.address}`, { maxSendHeaderBlockLength: 8 << 20 } as never)
    bomb.on('error', () => {})
    const big: Record<string, string> = { ':path': '/h2app/x', ':authority': 'h2app' }
    for (let i = 0; i < 4000; i++) big[`x-h${i}`] = 'v'.repeat(1000)
    const refused = await new Promise<string>(resolve => {
      try {
        const req = bomb.request(big)
        req.on('response', h => resolve(`answered ${String(h[':status'])}`))
        req.on('error', e => resolve(`refused: ${(e as Error).message}`))
        req.on('close', () => resolve(`reset ${req.rstCode}`))
      } catch (e) {
        resolve(`refused: ${(e as Error).message}`)
      }
    })
    bomb.destroy()
    assert.doesNotMatch(refused, /answered 200/, 'the bomb was not served')
    global.gc?.()
    const grown = (process.memoryUsage().rss - rss0) / 1e6
    assert.ok(grown < 150, `memory grew ${grown.toFixed(0)} MB`)
    await stillServing('after the bomb')
  })
})

describe('a gRPC call a host refuses goes to the next instance', () => {
  let a: AllocatorDaemon
  let b: AllocatorDaemon
  let proxy: ProxyDaemon
  let c: grpc.Client & Record<string, Unary>
  const apps = {
    echo: { Command: [process.execPath, APP], Protocol: 'grpc' as const, Health: { Tcp: true }, IdleTimeoutS: 300 }
  }
  const allocator = { Runtime: 'process' as const, MaxInstances: 4, MemoryMB: 1024, DrainTimeoutS: 1 }

  before(async () => {
    a = await startAllocator({ Psk: PSK, Apps: apps, Allocator: allocator })
    b = await startAllocator({ Psk: PSK, Apps: apps, Allocator: allocator, Bootstraps: [addrOf(a.agent)] })
    proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(a.agent), addrOf(b.agent)] })
    await waitFor('the proxy sees both allocators', () =>
      [a, b].every(x => proxy.agent.membership.table.get(x.agent.peer)?.status === 'alive')
    )
    c = client(proxy.address, 'echo')
  })

  after(async () => {
    c.close()
    await proxy.stop()
    await Promise.all([a.stop(), b.stop()])
  })

  /** A unary call: its answer or error, and the instance that served it (x-physarum-instance). */
  async function served(msg: string): Promise<{ res?: Any; err?: grpc.ServiceError; instance?: string }> {
    return await new Promise(resolve => {
      let instance: string | undefined
      const call = c.unary({ msg }, new grpc.Metadata(), { deadline: Date.now() + 20000 }, (err, res) => {
        resolve(err !== null ? { err, instance } : { res, instance })
      })
      call.on('metadata', md => {
        instance = md.get('x-physarum-instance')[0] as string | undefined
      })
    })
  }

  test('a host draining (DRAINING before the app saw the call): the call is served by the other allocator', async () => {
    const first = await served('first')
    assert.equal(first.err, undefined, first.err?.message)
    const host = [a, b].find(x => first.instance?.endsWith(`@${x.agent.peer}`))
    assert.ok(host !== undefined, `served by one of the allocators: ${first.instance}`)
    const other = host === a ? b : a
    // The host refuses what is new (the proxy does not know yet: no announcement says so).
    host.manager.draining = true
    try {
      const again = await served('again')
      assert.equal(again.err, undefined, again.err?.message)
      assert.deepEqual(again.res?.msg, 'again')
      assert.match(again.instance ?? '', new RegExp(`@${other.agent.peer}$`), 'served by the other allocator')
    } finally {
      host.manager.draining = false
    }
  })
})

after(() => {
  rmSync(dir, { recursive: true, force: true })
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
