// The allocator as a real child process: restart recovery after kill -9 (adopt the
// healthy leftovers, remove the rest: no orphans) and a graceful SIGTERM that lets a
// slow request finish, exits 0 and leaves no instance behind.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCli, killAll, alive } from '../helpers/cli.js'
import { startAgent, waitFor, helloApp } from '../helpers/cluster.js'
import { dockerReady, buildTestImage, labelled, removeLabelled, TEST_IMAGE } from '../helpers/docker.js'
import { requestAllocation } from '../../src/allocation/protocol.js'
import { ForwardClient } from '../../src/forward/client.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Agent } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '3'.repeat(64)
let dir: string
const clients: Agent[] = []
const pids: number[] = []

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-alloc-cli-'))
})
after(async () => {
  await Promise.all(
    clients.map(async c => {
      await c.stop()
    })
  )
  await killAll()
  // A PID the state file did not have is -1 here: kill(-(-1)) would be kill(1).
  for (const p of pids) {
    if (p > 0) {
      try {
        process.kill(-p, 'SIGKILL')
      } catch {}
    }
  }
  rmSync(dir, { recursive: true, force: true })
})

function conf(name: string, apps: Record<string, unknown>, runtime = 'process'): string {
  const f = join(dir, name)
  writeFileSync(
    f,
    JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Apps: apps, Allocator: { Runtime: runtime, DrainTimeoutS: 10 } })
  )
  return f
}

async function allocator(
  config: string,
  keyfile: string
): Promise<{ d: ReturnType<typeof spawnCli>; addr: string; peer: string; admin: string }> {
  const d = spawnCli(['allocator', '--configfile', config, '--keyfile', keyfile, '--admin', '127.0.0.1:0'], {
    env: { PHYSARUM_PSK: PSK },
    cwd: dir
  })
  const m = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  await d.waitFor(/catalog: /)
  return { d, addr: m[1], peer: m[2], admin }
}

async function client(bootstrap: string): Promise<Agent> {
  const c = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [bootstrap] } })
  clients.push(c)
  const peer = bootstrap.split('/p2p/')[1]
  await waitFor('the client sees the allocator', () => c.membership.table.get(peer)?.status === 'alive')
  return c
}

async function instances(admin: string): Promise<Array<{ id: string; app: string; state: string; adopted: boolean }>> {
  return (await (await fetch(`http://${admin}/v1/instances`)).json()) as Array<{
    id: string
    app: string
    state: string
    adopted: boolean
  }>
}

test('kill -9 with process instances running, start again → healthy ones adopted, the rest removed', async () => {
  const keyfile = join(dir, 'proc', 'allocator.key')
  const first = await allocator(conf('proc1.json', { hello: helloApp(), other: helloApp() }), keyfile)
  const c = await client(first.addr)
  const peer = peerIdFromString(first.peer)
  const keep = await requestAllocation(c.node, peer, 'hello')
  const drop = await requestAllocation(c.node, peer, 'other')
  const list = await instances(first.admin)
  assert.equal(list.length, 2)
  const state = JSON.parse(readFileSync(join(dir, 'proc', `instances-${first.peer}.json`), 'utf8')) as Array<{
    id: string
    pid: number
  }>
  const pidOf = (id: string): number => state.find(e => e.id === id)?.pid ?? -1
  pids.push(pidOf(keep.id), pidOf(drop.id))
  first.d.child.kill('SIGKILL')
  await first.d.exited
  assert.ok(alive(pidOf(keep.id)) && alive(pidOf(drop.id)), 'instances outlive a killed allocator')
  // The second run no longer lists "other" in its catalog.
  const second = await allocator(conf('proc2.json', { hello: helloApp() }), keyfile)
  assert.equal(second.peer, first.peer, 'same identity from the key file')
  const after = await instances(second.admin)
  assert.deepEqual(
    after.map(i => [i.id, i.app, i.state, i.adopted]),
    [[keep.id, 'hello', 'ready', true]]
  )
  await waitFor('the leftover of a removed app is stopped', () => !alive(pidOf(drop.id)), 5000)
  assert.ok(alive(pidOf(keep.id)))
  second.d.child.kill('SIGTERM')
  assert.equal((await second.d.exited).code, 0)
  await waitFor('adopted instance stopped on shutdown', () => !alive(pidOf(keep.id)), 5000)
})

test('kill -9 of an ephemeral allocator: its process instances die with it (none is left holding a port)', async () => {
  const d = spawnCli(
    [
      'allocator',
      '--configfile',
      conf('ephemeral.json', { hello: helloApp() }),
      '--ephemeral',
      '--admin',
      '127.0.0.1:0'
    ],
    {
      env: { PHYSARUM_PSK: PSK },
      cwd: dir
    }
  )
  const m = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/)
  await d.waitFor(/catalog: /)
  const c = await client(m[1])
  const peer = peerIdFromString(m[2])
  const insts = [
    await requestAllocation(c.node, peer, 'hello'),
    await requestAllocation(c.node, peer, 'hello', { fresh: true })
  ]
  // An ephemeral allocator keeps its state file in the temporary directory.
  const state = JSON.parse(readFileSync(join(tmpdir(), `instances-${m[2]}.json`), 'utf8')) as Array<{
    id: string
    pid: number
  }>
  const ps = insts.map(i => state.find(e => e.id === i.id)?.pid ?? -1)
  pids.push(...ps)
  assert.ok(
    ps.every(p => p > 0 && alive(p)),
    `both instances run: ${ps.join(', ')}`
  )
  d.child.kill('SIGKILL')
  await d.exited
  await waitFor('no instance of the killed ephemeral allocator is left', () => ps.every(p => !alive(p)), 5000)
})

test('SIGTERM while a slow request is in flight: it completes, exit 0, instances gone', async () => {
  const a = await allocator(conf('drain.json', { hello: helloApp() }), join(dir, 'drain', 'allocator.key'))
  const c = await client(a.addr)
  const peer = peerIdFromString(a.peer)
  const inst = await requestAllocation(c.node, peer, 'hello')
  const saved = JSON.parse(readFileSync(join(dir, 'drain', `instances-${a.peer}.json`), 'utf8')) as Array<{
    pid: number
  }>
  const pid = saved[0]?.pid ?? -1
  pids.push(pid)
  const fwd = new ForwardClient(c.node)
  const slow = fwd.request(peer, { v: 1, app: 'hello', instance: inst.id }, { method: 'GET', path: '/slow?ms=1500' })
  await new Promise(resolve => setTimeout(resolve, 300))
  a.d.child.kill('SIGTERM')
  // While it drains, a new request is refused with a code the proxy reroutes on.
  await a.d.waitFor(/draining 1 request/)
  const late = await fwd.request(peer, { v: 1, app: 'hello', instance: inst.id }, { method: 'GET', path: '/hello' })
  assert.equal(late.statusCode, 503)
  assert.equal(late.headers['x-physarum-error'], 'DRAINING')
  await late.body.dump()
  const r = await slow.catch(async (err: Error) => {
    await a.d.exited
    throw new Error(`${err.message}; allocator log:\n${a.d.stderr()}`)
  })
  assert.equal(r.statusCode, 200)
  assert.equal(await r.body.text(), 'slept 1500 ms\n')
  assert.equal((await a.d.exited).code, 0)
  assert.match(a.d.stderr(), /draining 1 request/)
  assert.ok(!alive(pid), 'the instance was stopped')
  await fwd.stop()
})

const engine = dockerReady()
test(
  'kill -9 with containers running, start again → adopted or removed, none orphaned',
  { skip: engine ? false : 'no Docker engine answers' },
  async () => {
    buildTestImage()
    const keyfile = join(dir, 'docker', 'allocator.key')
    const web = { Image: TEST_IMAGE, Port: 8080, Health: { Path: '/healthz' } }
    const first = await allocator(conf('d1.json', { web, gone: web }, 'docker'), keyfile)
    try {
      const c = await client(first.addr)
      const peer = peerIdFromString(first.peer)
      const keep = await requestAllocation(c.node, peer, 'web')
      await requestAllocation(c.node, peer, 'gone')
      assert.equal(labelled(first.peer).length, 2)
      first.d.child.kill('SIGKILL')
      await first.d.exited
      const second = await allocator(conf('d2.json', { web }, 'docker'), keyfile)
      const after = await instances(second.admin)
      assert.deepEqual(
        after.map(i => [i.id, i.adopted]),
        [[keep.id, true]]
      )
      assert.equal(labelled(first.peer).length, 1, 'the container of the app no longer in the catalog was removed')
      second.d.child.kill('SIGTERM')
      assert.equal((await second.d.exited).code, 0)
      assert.deepEqual(labelled(first.peer), [], 'no container left after a graceful stop')
    } finally {
      removeLabelled(first.peer)
    }
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
