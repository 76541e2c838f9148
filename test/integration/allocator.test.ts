// The allocator with the process runtime, in-process, against a real client peer:
// allocation → ready → served → idle → culled; single-flight; capacity; refusals;
// malformed requests; readiness timeout; dead instances; streaming with flat memory.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { startAgent, startAllocator, addrOf, waitFor, helloApp } from '../helpers/cluster.js'
import { alive } from '../helpers/cli.js'
import { builtinDefaults } from '../../src/config/defaults.js'
import { requestAllocation, ALLOC_PROTOCOL, AllocationError } from '../../src/allocation/protocol.js'
import { ForwardClient } from '../../src/forward/client.js'
import type { Agent } from '../../src/cluster/agent.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '1'.repeat(64)
const pidOf = (d: AllocatorDaemon, id: string): number => Number(d.manager.instances.get(id)?.rt?.handle)

async function refusal(p: Promise<unknown>): Promise<AllocationError> {
  try {
    await p
  } catch (err) {
    if (err instanceof AllocationError) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('allocator (process runtime)', () => {
  let alloc: AllocatorDaemon
  let client: Agent
  let fwd: ForwardClient

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: {
        hello: helloApp({ IdleTimeoutS: 1.5, MaxInstances: 2 }),
        solo: helloApp({ MaxInstances: 1 }),
        heavy: helloApp({ Resources: { MemoryMB: 5000 } }),
        never: { Command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], StartTimeoutS: 1 },
        missing: { Command: ['/nonexistent/physarum-test-binary'] },
        crashy: { Command: [process.execPath, '-e', 'process.exit(3)'], StartTimeoutS: 5 }
      },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 8,
        MemoryMB: 1024,
        DrainTimeoutS: 5,
        RateLimit: { PerSecond: 1000, Burst: 1000 }
      },
      // No periodic announcement within these tests: a change seen by the client was announced at once.
      Membership: { ...builtinDefaults().Membership, AnnounceIntervalMs: 600000 }
    })
    client = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [addrOf(alloc.agent)] } })
    fwd = new ForwardClient(client.node)
    await waitFor(
      'the client sees the allocator',
      () => client.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
  })

  after(async () => {
    await fwd.stop()
    await client.stop()
    await alloc.stop()
  })

  test('allocate → ready → served → idle → culled, announced at each step', async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'hello')
    assert.equal(inst.app, 'hello')
    assert.equal(inst.state, 'ready')
    assert.equal(inst.started, true)
    const pid = pidOf(alloc, inst.id)
    assert.ok(alive(pid))
    // Ready means ready: the very first request succeeds.
    const r = await fwd.request(
      alloc.agent.node.peerId,
      { v: 1, app: 'hello', instance: inst.id },
      { method: 'GET', path: '/hello' }
    )
    assert.equal(r.statusCode, 200)
    assert.equal(await r.body.text(), 'hello world\n')
    assert.equal(r.headers['x-instance'], inst.id)
    assert.match(String(r.headers.via), /physarum/)
    // The announcement carries the ready instance, announced at once (the periodic round is 10 minutes away).
    await waitFor(
      'instance announced',
      () => client.membership.table.get(alloc.agent.peer)?.announcement.instances.hello?.ready === 1,
      3000
    )
    // Idle for IdleTimeoutS (1.5 s) → culled; the announcement drops it; the process is gone.
    await waitFor('culled', () => !alloc.manager.instances.has(inst.id), 8000)
    await waitFor('process gone', () => !alive(pid), 5000)
    await waitFor(
      'withdrawn from the announcement',
      () => (client.membership.table.get(alloc.agent.peer)?.announcement.instances.hello?.ready ?? 0) === 0,
      3000
    )
    const metrics = await alloc.agent.metrics.registry.metrics()
    assert.match(metrics, /physarum_culls_total\{app="hello",reason="idle"\} 1/)
    assert.match(metrics, /physarum_allocations_total\{app="hello",result="ok"\} 1/)
  })

  test('forwarded requests carry X-Forwarded-* and Via, lose hop-by-hop headers, and are counted', async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'hello')
    const r = await fwd.request(
      alloc.agent.node.peerId,
      { v: 1, app: 'hello', instance: inst.id },
      {
        method: 'POST',
        path: '/echo?x=1',
        body: 'abc',
        headers: { 'content-type': 'text/plain', 'x-custom': 'yes', 'x-drop': 'me', connection: 'x-drop' }
      }
    )
    const echo = (await r.body.json()) as {
      method: string
      url: string
      headers: Record<string, string>
      length: number
    }
    assert.equal(echo.method, 'POST')
    assert.equal(echo.url, '/echo?x=1')
    assert.equal(echo.length, 3)
    assert.equal(echo.headers['x-custom'], 'yes')
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(echo.headers['x-forwarded-proto'], 'http')
    assert.equal(echo.headers['x-forwarded-host'], 'hello.physarum')
    assert.match(echo.headers.via, /1\.1 physarum/)
    assert.ok(alloc.manager.list().some(i => i.id === inst.id && i.state === 'ready'))
    // Raw HTTP on a forwarding stream, to send the hop-by-hop headers a client library would not.
    const sock = await fwd.open(alloc.agent.node.peerId, { v: 1, app: 'hello', instance: inst.id })
    let raw = ''
    sock.on('data', (d: Buffer) => {
      raw += d.toString()
    })
    sock.write(
      'GET /echo HTTP/1.1\r\nHost: raw.test\r\nConnection: keep-alive, X-Drop\r\nX-Drop: me\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: secret\r\nX-Keep: kept\r\nContent-Length: 0\r\n\r\n'
    )
    const body = await waitFor(
      'raw response',
      () => {
        const i = raw.indexOf('\r\n\r\n')
        return i >= 0 && raw.endsWith('}') ? raw.slice(i + 4) : undefined
      },
      5000
    )
    sock.destroy()
    const rawEcho = JSON.parse(body) as { headers: Record<string, string> }
    assert.equal(rawEcho.headers['x-keep'], 'kept')
    for (const h of ['x-drop', 'keep-alive', 'te', 'proxy-authorization'])
      assert.equal(rawEcho.headers[h], undefined, `${h} removed`)
    assert.equal(rawEcho.headers['x-forwarded-host'], 'raw.test')
    assert.match(
      await alloc.agent.metrics.registry.metrics(),
      /physarum_forwarded_requests_total\{app="hello",status="200"\} [1-9]/
    )
  })

  test('a request for an app or instance not hosted here gets a clear error response', async () => {
    const r1 = await fwd.request(alloc.agent.node.peerId, { v: 1, app: 'nosuchapp' }, { method: 'GET', path: '/' })
    assert.equal(r1.statusCode, 404)
    assert.match(
      ((await r1.body.json()) as { error: { message: string } }).error.message,
      /nosuchapp is not hosted here/
    )
    const r2 = await fwd.request(
      alloc.agent.node.peerId,
      { v: 1, app: 'hello', instance: 'deadbeef' },
      { method: 'GET', path: '/' }
    )
    assert.equal(r2.statusCode, 503)
    assert.match(
      ((await r2.body.json()) as { error: { message: string } }).error.message,
      /deadbeef of hello is not running here/
    )
  })

  test('50 concurrent requests for one app → exactly one start', async () => {
    const before = alloc.manager.readyOf('solo').length
    assert.equal(before, 0)
    const results = await Promise.all(
      Array.from({ length: 50 }, async () => await requestAllocation(client.node, alloc.agent.node.peerId, 'solo'))
    )
    assert.equal(new Set(results.map(r => r.id)).size, 1)
    assert.equal(alloc.manager.readyOf('solo').length, 1)
    // A fresh (scale-out) request beyond the app's MaxInstances (1) is refused.
    const e = await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'solo', { fresh: true }))
    assert.equal(e.code, 'NO_CAPACITY')
    assert.match(e.message, /maximum of 1/)
  })

  test('refusals: UNKNOWN_APP, NO_CAPACITY (memory budget), START_FAILED, NOT_READY', async () => {
    assert.equal(
      (await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'unknown-app'))).code,
      'UNKNOWN_APP'
    )
    const mem = await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'heavy'))
    assert.equal(mem.code, 'NO_CAPACITY')
    assert.match(mem.message, /memory/)
    const t = Date.now()
    const missing = await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'missing'))
    assert.equal(missing.code, 'START_FAILED')
    assert.match(missing.message, /nonexistent\/physarum-test-binary/)
    assert.ok(Date.now() - t < 2000)
    const crashy = await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'crashy'))
    assert.equal(crashy.code, 'START_FAILED')
    const t2 = Date.now()
    const never = await refusal(requestAllocation(client.node, alloc.agent.node.peerId, 'never'))
    assert.equal(never.code, 'NOT_READY')
    assert.ok(Date.now() - t2 >= 900 && Date.now() - t2 < 4000, `NOT_READY after ${Date.now() - t2} ms`)
    assert.equal(
      [...alloc.manager.instances.values()].filter(i => i.app === 'never').length,
      0,
      'the unready instance was removed'
    )
  })

  test('malformed and oversized requests → BAD_REQUEST, and the allocator keeps serving', async () => {
    const send = async (
      payload: Uint8Array
    ): Promise<{ ok: boolean; error?: { code: string; message: string } } | undefined> => {
      const stream = await client.node.dialProtocol(alloc.agent.node.peerId, ALLOC_PROTOCOL)
      const lp = lpStream(stream, { maxDataLength: 64 * 1024 })
      try {
        await lp.write(payload)
        const raw = await lp.read({ signal: AbortSignal.timeout(5000) })
        return JSON.parse(new TextDecoder().decode(raw.subarray()))
      } catch {
        return undefined
      } finally {
        stream.abort(new Error('done'))
      }
    }
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
    for (const bad of [
      'not json',
      '{"v":1}',
      '{"v":1,"id":"x","app":"../etc"}',
      '{"v":1,"id":"x","app":"hello","image":"evil"}',
      '{"v":2,"id":"x","app":"hello"}',
      '[]'
    ]) {
      const res = await send(enc(bad))
      assert.equal(res?.ok, false, bad)
      assert.equal(res?.error?.code, 'BAD_REQUEST', bad)
    }
    const big = await send(enc(JSON.stringify({ v: 1, id: 'x', app: 'hello', pad: 'x'.repeat(20000) })))
    assert.equal(big?.error?.code, 'BAD_REQUEST')
    const utf = await send(new Uint8Array([0xff, 0xfe, 0xfd]))
    assert.equal(utf?.error?.code, 'BAD_REQUEST')
    // Garbage without a valid length prefix: the stream is reset; nothing else happens.
    const s = await client.node.dialProtocol(alloc.agent.node.peerId, ALLOC_PROTOCOL)
    s.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))
    await new Promise(resolve => setTimeout(resolve, 200))
    s.abort(new Error('done'))
    const ok = await requestAllocation(client.node, alloc.agent.node.peerId, 'hello')
    assert.equal(ok.state, 'ready')
    assert.match(
      await alloc.agent.metrics.registry.metrics(),
      /physarum_allocations_total\{app="\?",result="BAD_REQUEST"\} [1-9]/
    )
  })

  test('an instance whose process exits is withdrawn at once', async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'hello', { fresh: true })
    const pid = pidOf(alloc, inst.id)
    process.kill(-pid, 'SIGKILL')
    await waitFor('withdrawn', () => !alloc.manager.instances.has(inst.id), 2000)
  })

  test('a 200 MB response streams through the serving side with flat memory', { timeout: 120000 }, async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'hello')
    // Live memory (heap + buffers after a GC) must stay flat; RSS alone also counts garbage
    // that the allocator has not collected yet, so it is reported, not asserted on.
    const gc = (globalThis as { gc?: () => void }).gc
    const live = (): number => {
      gc?.()
      const m = process.memoryUsage()
      return m.heapUsed + m.arrayBuffers
    }
    const base = live()
    const baseRss = process.memoryUsage().rss
    let peak = base
    let peakRss = baseRss
    const timer = setInterval(() => {
      peak = Math.max(peak, live())
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
    }, 100)
    const total = 200 * 1024 * 1024
    const r = await fwd.request(
      alloc.agent.node.peerId,
      { v: 1, app: 'hello', instance: inst.id },
      { method: 'GET', path: `/bytes?n=${total}` }
    )
    let got = 0
    for await (const chunk of r.body) got += (chunk as Buffer).length
    clearInterval(timer)
    assert.equal(r.statusCode, 200)
    assert.equal(got, total)
    const growth = (peak - base) / 1048576
    console.log(
      `# 200 MB streamed: live memory grew ${growth.toFixed(1)} MB, RSS ${((peakRss - baseRss) / 1048576).toFixed(0)} MB${gc === undefined ? ' (no --expose-gc: live memory includes garbage)' : ''}`
    )
    assert.ok(
      growth < (gc === undefined ? 150 : 48),
      `live memory grew by ${growth.toFixed(0)} MB while 200 MB streamed through`
    )
  })
})

test('the per-peer rate limit refuses a flood with RATE_LIMITED', async () => {
  const alloc = await startAllocator({
    Psk: PSK,
    Apps: { hello: helloApp() },
    Allocator: {
      Runtime: 'process',
      MaxInstances: 4,
      MemoryMB: 1024,
      DrainTimeoutS: 1,
      RateLimit: { PerSecond: 0.01, Burst: 3 }
    }
  })
  const client = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [addrOf(alloc.agent)] } })
  try {
    await waitFor('connected', () => client.membership.table.get(alloc.agent.peer) !== undefined)
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, async () => await requestAllocation(client.node, alloc.agent.node.peerId, 'hello'))
    )
    const limited = results.filter(
      r => r.status === 'rejected' && (r.reason as AllocationError).code === 'RATE_LIMITED'
    ).length
    assert.equal(limited, 3)
    assert.equal(results.filter(r => r.status === 'fulfilled').length, 3)
  } finally {
    await client.stop()
    await alloc.stop()
  }
})

test('MinInstances are kept warm; an instance failing its health checks is replaced', { timeout: 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-min-'))
  const flag = join(dir, 'healthy')
  writeFileSync(flag, '1')
  // Healthy while the flag file exists: a liveness check that can be made to fail.
  const script = `const fs=require('fs');require('http').createServer((q,s)=>{s.statusCode=q.url==='/healthz'&&!fs.existsSync(${JSON.stringify(flag)})?500:200;s.end('ok')}).listen(process.env.PORT,'127.0.0.1')`
  const alloc = await startAllocator({
    Psk: PSK,
    Apps: {
      warm: {
        Command: [process.execPath, '-e', script],
        Health: { Path: '/healthz', IntervalMs: 100, FailureThreshold: 2 },
        MinInstances: 1,
        IdleTimeoutS: 0.5
      }
    },
    Allocator: {
      Runtime: 'process',
      MaxInstances: 4,
      MemoryMB: 1024,
      DrainTimeoutS: 1,
      RateLimit: { PerSecond: 10, Burst: 10 }
    }
  })
  try {
    await waitFor('one warm instance at start', () => alloc.manager.readyOf('warm').length === 1, 10000)
    const first = alloc.manager.readyOf('warm')[0].id
    await new Promise(resolve => setTimeout(resolve, 1500))
    assert.deepEqual(
      alloc.manager.readyOf('warm').map(i => i.id),
      [first],
      'idle but kept: MinInstances'
    )
    rmSync(flag)
    await waitFor('the unhealthy instance removed', () => !alloc.manager.instances.has(first), 5000)
    writeFileSync(flag, '1')
    await waitFor(
      'a replacement keeps MinInstances',
      () => alloc.manager.readyOf('warm').some(i => i.id !== first),
      10000
    )
    assert.match(
      await alloc.agent.metrics.registry.metrics(),
      /physarum_culls_total\{app="warm",reason="unhealthy"\} 1/
    )
  } finally {
    await alloc.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
