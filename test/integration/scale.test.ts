// Scale out under load, and large bodies through the whole path: sustained concurrency
// above TargetConcurrency on one instance brings a second one, and both then serve;
// 200 MB in each direction through proxy → libp2p → allocator → app, checksummed.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startAllocator, startProxy, addrOf, waitFor, helloApp } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '6'.repeat(64)
let alloc: AllocatorDaemon
let proxy: ProxyDaemon

before(async () => {
  const app = helloApp({ TargetConcurrency: 3, MaxInstances: 3 })
  alloc = await startAllocator({
    Psk: PSK,
    Apps: { hello: app },
    Allocator: {
      Runtime: 'process',
      MaxInstances: 8,
      MemoryMB: 2048,
      DrainTimeoutS: 2,
      RateLimit: { PerSecond: 100, Burst: 100 }
    }
  })
  proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)], Apps: { hello: app } })
  await waitFor('connected', () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive')
})

after(async () => {
  await proxy?.stop()
  await alloc?.stop()
})

test(
  'sustained concurrency above TargetConcurrency brings a second instance, and both serve',
  { timeout: 60000 },
  async () => {
    const first = await request(`http://${proxy.address}/hello/hello`)
    await first.body.dump()
    assert.equal(alloc.manager.readyOf('hello').length, 1)
    const seen = new Set<string>()
    const deadline = Date.now() + 20000
    // 8 clients in a loop of 200 ms requests: ~8 in flight on one instance, target 3.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline && !(seen.size >= 2 && alloc.manager.readyOf('hello').length >= 2)) {
          const r = await request(`http://${proxy.address}/hello/slow?ms=200`)
          assert.equal(r.statusCode, 200)
          await r.body.dump()
          // A missing header must not count as a second instance.
          const by = String(r.headers['x-physarum-instance'])
          assert.match(by, /^[^@]+@\w+$/)
          seen.add(by)
        }
      })
    )
    assert.ok(alloc.manager.readyOf('hello').length >= 2, 'a second instance was started')
    assert.ok(alloc.manager.readyOf('hello').length <= 3, 'never beyond MaxInstances')
    assert.ok(seen.size >= 2, `both instances served (${[...seen].join(', ')})`)
  }
)

test('200 MB up and 200 MB down through the whole path, checksummed', { timeout: 120000 }, async () => {
  const MB = 1024 * 1024
  const chunk = Buffer.alloc(MB)
  const up = createHash('sha256')
  let i = 0
  const body = Readable.from(
    (function* () {
      for (; i < 200; i++) {
        chunk.writeUInt32BE(i, 0)
        const c = Buffer.from(chunk)
        up.update(c)
        yield c
      }
    })()
  )
  const r = await request(`http://${proxy.address}/hello/echo`, {
    method: 'POST',
    body,
    headers: { 'content-length': String(200 * MB) }
  })
  const e = (await r.body.json()) as { length: number; sha256: string }
  assert.equal(e.length, 200 * MB)
  assert.equal(e.sha256, up.digest('hex'))
  const down = await request(`http://${proxy.address}/hello/bytes?n=${200 * MB}`)
  const h = createHash('sha256')
  let got = 0
  for await (const c of down.body) {
    got += (c as Buffer).length
    h.update(c as Buffer)
  }
  assert.equal(got, 200 * MB)
  assert.equal(
    h.digest('hex'),
    createHash('sha256')
      .update(Buffer.alloc(200 * MB, 120))
      .digest('hex')
  )
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
