// Per-app traffic policy (Apps.*.RequestTimeoutS, TryTimeoutS, Retry) through the whole path
// (proxy → libp2p → allocator → the hello app): one app times out at its own timeout while
// another with a longer one completes, and a 503 from a GET is retried only when the app's
// policy says so, a POST never. Retries are read from the proxy's own metric.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startAllocator, startProxy, addrOf, waitFor, helloApp } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '8'.repeat(64)

describe('per-app traffic policy', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let base: string
  const apps = {
    quick: helloApp({ RequestTimeoutS: 0.5 }),
    patient: helloApp({ RequestTimeoutS: 5 }),
    picky: helloApp({ Retry: { On: ['error', '5xx'], Attempts: 2, BudgetPercent: 100 } }),
    thrifty: helloApp({ Retry: { On: ['error', '5xx'], BudgetPercent: 20 } }),
    plain: helloApp()
  }

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: apps,
      Allocator: {
        Runtime: 'process',
        MaxInstances: 8,
        MemoryMB: 2048,
        DrainTimeoutS: 2,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    // The proxy's own catalog carries the policies (the policy is the client side's).
    proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)], Apps: apps })
    base = `http://${proxy.address}`
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
    for (const app of Object.keys(apps)) {
      const r = await request(`${base}/${app}/hello`)
      assert.equal(r.statusCode, 200, `${app} warm`)
      await r.body.dump()
    }
  })

  after(async () => {
    await proxy.stop()
    await alloc.stop()
  })

  const retries = async (app: string): Promise<number> => {
    const text = await proxy.agent.metrics.registry.metrics()
    return Number(new RegExp(`physarum_proxy_retries_total\\{app="${app}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
  }

  test('an app times out at its own RequestTimeoutS; one with a longer timeout completes', async () => {
    const t0 = Date.now()
    const r = await request(`${base}/quick/slow?ms=2000`)
    const body = (await r.body.json()) as { error: { code: string } }
    const took = Date.now() - t0
    assert.equal(r.statusCode, 504)
    assert.equal(body.error.code, 'UPSTREAM_TIMEOUT')
    assert.ok(took < 1800, `quick gave up at its own 0.5 s, all tries together (${took} ms)`)
    const p = await request(`${base}/patient/slow?ms=2000`)
    assert.equal(p.statusCode, 200)
    await p.body.dump()
  })

  test('a 503 from a GET is retried only when the app asks; a POST never', async () => {
    const before = { picky: await retries('picky'), plain: await retries('plain') }
    const get = async (app: string, method: 'GET' | 'POST' = 'GET'): Promise<number> => {
      const r = await request(`${base}/${app}/status?code=503`, { method, body: method === 'POST' ? 'x' : undefined })
      await r.body.dump()
      return r.statusCode
    }
    // Every instance answers 503 here: the retry's answer is the one the client gets.
    assert.equal(await get('picky'), 503)
    assert.equal(await retries('picky'), before.picky + 1, 'picky retried its GET once')
    assert.equal(await get('plain'), 503)
    assert.equal(await retries('plain'), before.plain, 'plain does not retry a 5xx')
    assert.equal(await get('picky', 'POST'), 503)
    assert.equal(await retries('picky'), before.picky + 1, 'a POST is never retried')
  })

  test('requests that need no retry take nothing from the retry budget', async () => {
    // 20 %: 0.2 of a retry per request. Twenty good answers (which a budget that was charged
    // for every request that might have been retried would have spent) leave room for one.
    for (let i = 0; i < 20; i++) {
      const r = await request(`${base}/thrifty/hello`)
      assert.equal(r.statusCode, 200)
      await r.body.dump()
    }
    const before = await retries('thrifty')
    const r = await request(`${base}/thrifty/status?code=503`)
    await r.body.dump()
    assert.equal(await retries('thrifty'), before + 1)
  })

  test('the policy keys are in the config reference', async () => {
    const { configReference } = await import('../../src/config/reference.js')
    const ref = configReference()
    for (const key of ['RequestTimeoutS', 'TryTimeoutS', 'Retry.Attempts', 'Retry.On', 'Retry.BudgetPercent'])
      assert.ok(ref.includes(`\`Apps.<name>.${key}\``), `Apps.<name>.${key} in the reference`)
  })
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
