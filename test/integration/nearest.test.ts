// Nearest wins: two allocators, one behind a TCP delay relay (real latency on loopback).
// The nearer one is chosen for a cold start and for serving; an instance beyond SoftReq
// is used at once while a nearer one is allocated in the background.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startAllocator, startProxy, addrOf, waitFor, helloApp } from '../helpers/cluster.js'
import { delayRelay, type DelayRelay } from '../helpers/delay-relay.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import { requestAllocation } from '../../src/allocation/protocol.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '5'.repeat(64)
let near: AllocatorDaemon
let far: AllocatorDaemon
let relay: DelayRelay
let proxy: ProxyDaemon

const apps = { hello: helloApp(), cold: helloApp() }
const perf = { Perf: { SoftReq: { RTT: 20 }, HardReq: { RTT: 2000 } } }

before(async () => {
  const farPort = await reservePort()
  relay = await delayRelay(farPort, 30)
  const farAddr = `/ip4/127.0.0.1/tcp/${relay.port}`
  const allocCfg = {
    Psk: PSK,
    Apps: apps,
    Allocator: {
      Runtime: 'process' as const,
      MaxInstances: 8,
      MemoryMB: 2048,
      DrainTimeoutS: 2,
      RateLimit: { PerSecond: 100, Burst: 100 }
    }
  }
  far = await startAllocator(
    { ...allocCfg, Listen: [`/ip4/127.0.0.1/tcp/${farPort}`], Announce: [farAddr] },
    { inboundOnly: true }
  )
  const farBoot = `${farAddr}/p2p/${far.agent.peer}`
  near = await startAllocator({ ...allocCfg, Bootstraps: [farBoot] })
  proxy = await startProxy({
    Psk: PSK,
    Bootstraps: [addrOf(near.agent), farBoot],
    Apps: { hello: { ...helloApp(), ...perf }, cold: { ...helloApp(), ...perf } }
  })
  await waitFor(
    'the proxy sees both allocators',
    () => [near, far].every(a => proxy.agent.membership.table.get(a.agent.peer)?.status === 'alive'),
    15000
  )
  await proxy.agent.rtt.measureMany([near.agent.node.peerId, far.agent.node.peerId], { samples: 3, timeoutMs: 2000 })
})

after(async () => {
  await proxy?.stop()
  await near?.stop()
  await far?.stop()
  await relay?.close()
})

test('the relay makes real latency: the far allocator is ~60 ms away, the near one < 20 ms', () => {
  const nearRtt = proxy.agent.rtt.get(near.agent.peer)?.ms ?? Infinity
  const farRtt = proxy.agent.rtt.get(far.agent.peer)?.ms ?? 0
  assert.ok(nearRtt < 20, `near ${nearRtt} ms`)
  assert.ok(farRtt >= 55, `far ${farRtt} ms`)
})

test('a cold start goes to the nearest allocator', async () => {
  const r = await request(`http://${proxy.address}/cold/hello`)
  assert.equal(r.statusCode, 200)
  await r.body.dump()
  assert.match(String(r.headers['x-physarum-instance']), new RegExp(`@${near.agent.peer}$`))
  assert.equal(near.manager.readyOf('cold').length, 1)
  assert.equal(far.manager.readyOf('cold').length, 0)
})

test('an instance beyond SoftReq serves at once while a nearer one is allocated, then the nearer one serves', async () => {
  // Only the far allocator has an instance of hello.
  await requestAllocation(proxy.agent.node, far.agent.node.peerId, 'hello')
  await waitFor('far instance announced', () => proxy.placement.endpoints('hello').length === 1, 5000)
  const first = await request(`http://${proxy.address}/hello/hello`)
  assert.equal(first.statusCode, 200)
  await first.body.dump()
  assert.match(
    String(first.headers['x-physarum-instance']),
    new RegExp(`@${far.agent.peer}$`),
    'served by the far instance at once'
  )
  await waitFor(
    'a nearer instance allocated in the background',
    () => near.manager.readyOf('hello').length === 1,
    10000
  )
  const nearInstance = `${near.manager.readyOf('hello')[0].id}@${near.agent.peer}`
  // Requests keep succeeding (every one: a failure is not retried away), and now go to the near instance.
  const statuses: number[] = []
  const servedBy = await waitFor(
    'served by the near allocator',
    async () => {
      const r = await request(`http://${proxy.address}/hello/hello`)
      statuses.push(r.statusCode)
      await r.body.dump()
      const by = String(r.headers['x-physarum-instance'])
      return by.endsWith(`@${near.agent.peer}`) ? by : undefined
    },
    10000,
    50
  )
  assert.deepEqual(
    statuses.filter(s => s !== 200),
    [],
    `every request while the near instance came up answered 200: ${statuses.join(', ')}`
  )
  assert.equal(servedBy, nearInstance, 'served by the instance the near allocator started in the background')
  for (let i = 0; i < 10; i++) {
    const r = await request(`http://${proxy.address}/hello/hello`)
    await r.body.dump()
    assert.match(
      String(r.headers['x-physarum-instance']),
      new RegExp(`@${near.agent.peer}$`),
      'the far instance is beyond SoftReq: not balanced to'
    )
  }
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
