// The allocator with the Docker runtime against a real engine (skipped, visibly, when
// none answers; CI starts one). Images are built locally from busybox: no registry.
import { test, describe, before, after } from 'node:test'
import { execFileSync } from 'node:child_process'
import assert from 'node:assert/strict'
import { startAgent, startAllocator, addrOf, waitFor } from '../helpers/cluster.js'
import { dockerReady, buildTestImage, labelled, stopAndSweep, inspect, TEST_IMAGE } from '../helpers/docker.js'
import { requestAllocation, AllocationError } from '../../src/allocation/protocol.js'
import { ForwardClient } from '../../src/forward/client.js'
import type { Agent } from '../../src/cluster/agent.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '2'.repeat(64)
const engine = dockerReady()
if (!engine)
  console.log('# SKIP docker tests: no Docker engine answers (docker info failed); CI installs and starts one')

describe('allocator (Docker runtime)', { skip: engine ? false : 'no Docker engine answers' }, () => {
  let alloc: AllocatorDaemon
  let client: Agent
  let fwd: ForwardClient

  before(async () => {
    buildTestImage()
    alloc = await startAllocator({
      Psk: PSK,
      Apps: {
        web: {
          Image: TEST_IMAGE,
          Port: 8080,
          Health: { Path: '/healthz' },
          IdleTimeoutS: 2,
          Resources: { MemoryMB: 64, Cpus: 0.5, Pids: 64 }
        },
        ghost: { Image: 'physarum-test/does-not-exist:1', Port: 8080 },
        deaf: { Image: TEST_IMAGE, Port: 9999, StartTimeoutS: 2 }
      },
      Allocator: {
        Runtime: 'docker',
        MaxInstances: 8,
        MemoryMB: 2048,
        DrainTimeoutS: 5,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    client = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [addrOf(alloc.agent)] } })
    fwd = new ForwardClient(client.node)
    await waitFor('connected', () => client.membership.table.get(alloc.agent.peer) !== undefined)
  })

  after(async () => {
    await fwd?.stop()
    await client?.stop()
    await stopAndSweep(alloc)
  })

  test('allocate → ready → served → idle → culled; limits and a loopback-only port', async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'web')
    const rt = alloc.manager.instances.get(inst.id)?.rt
    assert.ok(rt !== undefined)
    const info = inspect(rt.handle)
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024)
    assert.equal(info.HostConfig.NanoCpus, 0.5e9)
    assert.equal(info.HostConfig.PidsLimit, 64)
    assert.equal(info.HostConfig.Privileged, false)
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges'])
    assert.deepEqual(info.Mounts, [])
    const binding = info.NetworkSettings.Ports['8080/tcp']?.[0]
    assert.equal(binding?.HostIp, '127.0.0.1', 'the app port is published on loopback only')
    const r = await fwd.request(
      alloc.agent.node.peerId,
      { v: 1, app: 'web', instance: inst.id },
      { method: 'GET', path: '/index.html' }
    )
    assert.equal(r.statusCode, 200)
    assert.equal(await r.body.text(), 'hello from busybox\n')
    assert.equal(labelled(alloc.agent.peer).length, 1)
    await waitFor('culled after 2 s idle', () => !alloc.manager.instances.has(inst.id), 10000)
    await waitFor('container removed', () => labelled(alloc.agent.peer).length === 0, 10000)
  })

  test('an image that does not exist → START_FAILED naming it, fast', async () => {
    const t = Date.now()
    await assert.rejects(
      requestAllocation(client.node, alloc.agent.node.peerId, 'ghost'),
      (e: unknown) =>
        e instanceof AllocationError &&
        e.code === 'START_FAILED' &&
        e.message.includes('physarum-test/does-not-exist:1')
    )
    assert.ok(Date.now() - t < 3000, `took ${Date.now() - t} ms`)
  })

  test('a health check that never passes → NOT_READY at the timeout, container removed', async () => {
    const t = Date.now()
    await assert.rejects(
      requestAllocation(client.node, alloc.agent.node.peerId, 'deaf'),
      (e: unknown) => e instanceof AllocationError && e.code === 'NOT_READY'
    )
    assert.ok(Date.now() - t >= 1900, 'waited for StartTimeoutS')
    await waitFor('container removed', () => labelled(alloc.agent.peer).length === 0, 10000)
  })

  test('a container that dies is withdrawn at once (Docker events)', async () => {
    const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'web', { fresh: true })
    const rt = alloc.manager.instances.get(inst.id)?.rt
    assert.ok(rt !== undefined)
    execFileSync('docker', ['kill', rt.handle])
    await waitFor('withdrawn', () => !alloc.manager.instances.has(inst.id), 3000)
    await waitFor('removed', () => labelled(alloc.agent.peer).length === 0, 10000)
  })
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
