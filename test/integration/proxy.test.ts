// The proxy against real allocators (process runtime) on 127.0.0.1: cold start then
// warm, errors (404, 503, 400, malformed HTTP), server mode, and HTTP fidelity through
// the whole path (client → proxy → libp2p → allocator → app and back).
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startAllocator, startProxy, addrOf, waitFor, helloApp, HELLO_COMMAND } from '../helpers/cluster.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { RequestAbort } from '../../src/util/http.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '4'.repeat(64)

describe('proxy with real allocators', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let base: string

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: {
        hello: helloApp({ IdleTimeoutS: 300 }),
        sluggish: { Command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], StartTimeoutS: 20 }
      },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 8,
        MemoryMB: 2048,
        DrainTimeoutS: 5,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)], Apps: { 'only-here': helloApp() } })
    base = `http://${proxy.address}`
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
  })

  after(async () => {
    await proxy.stop()
    await alloc.stop()
  })

  test('cold start: the first request allocates and answers 200; the next is warm on the same instance', async () => {
    assert.equal(alloc.manager.instances.size, 0)
    const r1 = await request(`${base}/hello/hello`)
    assert.equal(r1.statusCode, 200)
    assert.equal(await r1.body.text(), 'hello world\n')
    const inst = String(r1.headers['x-physarum-instance'])
    assert.match(inst, new RegExp(`@${alloc.agent.peer}$`))
    assert.match(String(r1.headers['server-timing']), /cold;dur=[1-9]/)
    assert.equal(alloc.manager.instances.size, 1)
    const r2 = await request(`${base}/hello/hello`)
    assert.equal(r2.statusCode, 200)
    await r2.body.dump()
    assert.equal(r2.headers['x-physarum-instance'], inst)
    assert.match(String(r2.headers['server-timing']), /cold;dur=0\.00/)
    assert.equal(alloc.manager.instances.size, 1)
    // The instance counts as live for the sweep of per-instance pools and figures (same key
    // format), through its host's announcement: not only as the proxy's recent allocation.
    const [id, peer] = inst.split('@')
    proxy.placement.forgetRecent(`${peer}/hello/${id}`)
    await waitFor('the instance announced', () => proxy.placement.liveKeys().has(`${peer}/hello/${id}`), 5000)
  })

  test('a client that left before its cold start began is let go at once, not after the cold-start timeout', async () => {
    const gone = new RequestAbort()
    gone.abort(new Error('client disconnected'))
    const t0 = Date.now()
    await assert.rejects(proxy.placement.choose('sluggish', { signal: gone }), /client went away/)
    assert.ok(Date.now() - t0 < 5000, `let go after ${Date.now() - t0} ms`)
    // The shared allocation goes on for other requests; this suite's next tests count instances.
    const starting = await waitFor(
      'the allocation reaching the allocator',
      () => [...alloc.manager.instances.values()].find(i => i.app === 'sluggish'),
      5000
    )
    await alloc.manager.remove(starting, 'test')
  })

  test('concurrent cold requests share one allocation', async () => {
    // A second allocator-less app name would 404; reuse hello after culling it.
    for (const i of [...alloc.manager.instances.values()]) await alloc.manager.remove(i, 'test')
    await waitFor('withdrawn', () => proxy.placement.endpoints('hello').length === 0, 5000)
    const rs = await Promise.all(Array.from({ length: 20 }, async () => await request(`${base}/hello/hello`)))
    for (const r of rs) {
      assert.equal(r.statusCode, 200)
      await r.body.dump()
    }
    assert.equal(new Set(rs.map(r => r.headers['x-physarum-instance'])).size, 1)
    assert.equal(alloc.manager.instances.size, 1)
  })

  test('errors: unknown app 404, no allocator 503, malformed app name 400', async () => {
    const r404 = await request(`${base}/nosuch/x`)
    assert.equal(r404.statusCode, 404)
    assert.match(((await r404.body.json()) as { error: { message: string } }).error.message, /unknown app nosuch/)
    const r503 = await request(`${base}/only-here/x`)
    assert.equal(r503.statusCode, 503)
    assert.match(
      ((await r503.body.json()) as { error: { message: string } }).error.message,
      /no allocator can host only-here/
    )
    for (const bad of ['/Bad/x', '/a%0d%0aX-Injected:1/x', `/${'a'.repeat(80)}/x`]) {
      const r = await request(`${base}${bad}`)
      assert.equal(r.statusCode, 400, bad)
      assert.match(((await r.body.json()) as { error: { code: string } }).error.code, /BAD_APP_NAME/)
    }
  })

  test('malformed HTTP gets a 400 (headers too large a 431) and the proxy keeps serving', async () => {
    const [host, port] = proxy.address.split(':')
    const raw = async (bytes: string): Promise<string> =>
      await new Promise<string>((resolve, reject) => {
        const s = connect(Number(port), host)
        let data = ''
        s.on('data', d => {
          data += d.toString()
        })
        s.on('end', () => {
          resolve(data)
        })
        s.on('error', reject)
        s.write(bytes)
      })
    assert.match(await raw('GARBAGE / HTTP/9.9\r\nthis is not a header\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request/)
    assert.match(
      await raw(`GET /hello/hello HTTP/1.1\r\nHost: p\r\nX-Big: ${'a'.repeat(33 * 1024)}\r\n\r\n`),
      /^HTTP\/1\.1 431 Request Header Fields Too Large/
    )
    const r = await request(`${base}/hello/hello`)
    assert.equal(r.statusCode, 200)
    await r.body.dump()
  })

  test('the status page and the proxy endpoints are never forwarded', async () => {
    const html = await request(`${base}/`)
    assert.equal(html.statusCode, 200)
    assert.match(String(html.headers['content-type']), /text\/html/)
    assert.match(await html.body.text(), /physarum proxy/)
    const json = await request(`${base}/`, { headers: { accept: 'application/json' } })
    const s = (await json.body.json()) as { apps: Array<{ app: string; instances: unknown[] }> }
    assert.ok(s.apps.some(a => a.app === 'hello' && a.instances.length === 1))
    const m = await request(`${base}/_physarum/metrics`)
    const text = await m.body.text()
    assert.match(text, /physarum_proxy_requests_total\{app="hello",status="200"\} [1-9]/)
    assert.match(text, /physarum_proxy_cold_starts_total\{app="hello"\} [1-9]/)
    assert.match(text, /physarum_proxy_allocations_total\{app="hello",result="ok"\} [1-9]/)
    const members = await request(`${base}/_physarum/members`)
    assert.equal(((await members.body.json()) as unknown[]).length, 2)
    const nf = await request(`${base}/_physarum/nope`)
    assert.equal(nf.statusCode, 404)
    await nf.body.dump()
  })

  describe('fidelity', () => {
    test('methods, status codes, query strings, request and response headers', async () => {
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        const r = await request(`${base}/hello/echo?a=1&b=%20x&a=2`, {
          method: method as 'GET',
          headers: { 'x-test': method, 'user-agent': 'physarum-test' },
          body: method === 'GET' || method === 'OPTIONS' ? undefined : 'body'
        })
        const e = (await r.body.json()) as { method: string; url: string; headers: Record<string, string> }
        assert.equal(e.method, method)
        assert.equal(e.url, '/echo?a=1&b=%20x&a=2')
        assert.equal(e.headers['x-test'], method)
        assert.equal(e.headers['user-agent'], 'physarum-test')
        assert.match(e.headers['x-forwarded-for'], /^127\.0\.0\.1/)
        assert.equal(e.headers['x-forwarded-host'], proxy.address)
        assert.equal(r.headers['x-instance'] !== undefined, true, 'response headers pass through')
      }
      const teapot = await request(`${base}/hello/status?code=418`)
      assert.equal(teapot.statusCode, 418)
      await teapot.body.dump()
      const missing = await request(`${base}/hello/not-there`)
      assert.equal(missing.statusCode, 404)
      assert.equal(await missing.body.text(), 'not found\n')
      const root = await request(`${base}/hello`)
      assert.equal(root.statusCode, 404, '/hello maps to / on the app')
      await root.body.dump()
    })

    test('redirects are passed through, not followed', async () => {
      const r = await request(`${base}/hello/redirect`)
      assert.equal(r.statusCode, 302)
      assert.equal(r.headers.location, '/hello')
      await r.body.dump()
    })

    test('HEAD, 204 and 304 come back without a body', async () => {
      for (const [path, method, status] of [
        ['/hello/hello', 'HEAD', 200],
        ['/hello/status?code=204', 'GET', 204],
        ['/hello/status?code=304', 'GET', 304]
      ] as const) {
        const r = await request(`${base}${path}`, { method })
        assert.equal(r.statusCode, status)
        assert.equal((await r.body.arrayBuffer()).byteLength, 0)
      }
    })

    test('1 MB bodies both ways, and a chunked upload, arrive intact', async () => {
      const body = randomBytes(1024 * 1024)
      const r = await request(`${base}/hello/echo`, { method: 'POST', body })
      const e = (await r.body.json()) as { length: number; sha256: string; headers: Record<string, string> }
      assert.equal(e.length, body.length)
      assert.equal(e.sha256, createHash('sha256').update(body).digest('hex'))
      // Chunked: a stream without a length.
      const chunks = [randomBytes(300000), randomBytes(5), randomBytes(700000)]
      const rc = await request(`${base}/hello/echo`, { method: 'PUT', body: Readable.from(chunks) })
      const ec = (await rc.body.json()) as { length: number; sha256: string; headers: Record<string, string> }
      assert.equal(ec.headers['transfer-encoding'], 'chunked')
      assert.equal(ec.length, 1000005)
      assert.equal(ec.sha256, createHash('sha256').update(Buffer.concat(chunks)).digest('hex'))
      const down = await request(`${base}/hello/bytes?n=${1024 * 1024}`)
      let got = 0
      for await (const c of down.body) got += (c as Buffer).length
      assert.equal(got, 1024 * 1024)
    })

    test('server-sent events arrive one by one, as they are produced', async () => {
      const r = await request(`${base}/hello/sse?n=4&ms=300`)
      assert.equal(r.headers['content-type'], 'text/event-stream')
      const times: number[] = []
      const t0 = Date.now()
      let text = ''
      for await (const c of r.body) {
        text += (c as Buffer).toString()
        times.push(Date.now() - t0)
      }
      assert.equal((text.match(/data: event/g) ?? []).length, 4)
      assert.ok(times.length >= 3, `events arrived in ${times.length} chunk(s): buffered`)
      assert.ok(times[0] < 600, `first event after ${times[0]} ms`)
    })
  })

  test('the instance killed mid-stream: the client sees an error, the proxy keeps serving', async () => {
    const r = await request(`${base}/hello/bytes?n=${500 * 1024 * 1024}`)
    const inst = String(r.headers['x-physarum-instance']).split('@')[0]
    const pid = Number(alloc.manager.instances.get(inst)?.rt?.handle)
    let got = 0
    await assert.rejects(
      (async () => {
        for await (const c of r.body) {
          got += (c as Buffer).length
          if (got > 1024 * 1024 && pid > 0) {
            try {
              process.kill(-pid, 'SIGKILL')
            } catch {}
          }
        }
      })()
    )
    assert.ok(got < 500 * 1024 * 1024)
    const again = await waitFor(
      'served again',
      async () => {
        const x = await request(`${base}/hello/hello`)
        const t = await x.body.text()
        return x.statusCode === 200 && t === 'hello world\n' ? String(x.headers['x-physarum-instance']) : undefined
      },
      10000,
      100
    )
    assert.match(again, new RegExp(`^[^@]+@${alloc.agent.peer}$`))
    assert.notEqual(again.split('@')[0], inst, 'served by another instance: the killed one is gone')
  })
})

test('server mode: a user-run app behind --app/--address is reachable through another proxy', async () => {
  const port = await reservePort()
  const app: ChildProcess = spawn(HELLO_COMMAND[0], [HELLO_COMMAND[1]], {
    env: { ...process.env, PORT: String(port), PHYSARUM_INSTANCE: 'user-run', HOST: '127.0.0.1' },
    stdio: 'ignore'
  })
  const server = await startProxy(
    { Psk: PSK, Apps: { mine: { Port: port, Health: { Path: '/healthz' } } } },
    { app: 'mine', address: { host: '127.0.0.1', port } }
  )
  const client = await startProxy({ Psk: PSK, Bootstraps: [addrOf(server.agent)] })
  try {
    await waitFor(
      'the instance announced',
      () => (client.agent.membership.table.get(server.agent.peer)?.announcement.instances.mine?.ready ?? 0) === 1,
      10000
    )
    const r = await request(`http://${client.address}/mine/hello`)
    assert.equal(r.statusCode, 200)
    assert.equal(await r.body.text(), 'hello world\n')
    assert.equal(r.headers['x-instance'], 'user-run')
    assert.match(String(r.headers['x-physarum-instance']), new RegExp(`@${server.agent.peer}$`))
    // The server-mode proxy is an entrypoint too, and serves its own instance locally.
    const local = await request(`http://${server.address}/mine/hello`)
    assert.equal(local.statusCode, 200)
    await local.body.dump()
  } finally {
    await client.stop()
    await server.stop()
    app.kill('SIGKILL')
  }
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
