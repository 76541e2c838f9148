// No orphans (issue 16, item 2): the allocator's watchdog. An ephemeral allocator killed by SIGKILL leaves no
// process or container within 5 s; a persistent one's instances wait Allocator.ReapGraceS for it: adopted when it
// starts again in time, removed when it does not. Checked by PID and by `docker ps` with the allocator's label; the
// watchdog itself is gone after its work.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { spawnCli, killAll, alive, childrenOf } from '../helpers/cli.js'
import { startAgent, waitFor, helloApp } from '../helpers/cluster.js'
import { dockerReady, buildTestImage, labelled, removeLabelled, TEST_IMAGE } from '../helpers/docker.js'
import { requestAllocation } from '../../src/allocation/protocol.js'
import type { Agent } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '6'.repeat(64)
const GRACE_S = 3
/** The adoption case's grace: a restart takes a few seconds on a loaded machine, and must come within it. */
const ADOPT_GRACE_S = 10
const engine = dockerReady()
if (!engine) console.log('# SKIP the Docker cases of orphans.test: no Docker engine answers (docker info failed)')
let dir: string
const clients: Agent[] = []
const groups: number[] = []
const peers: string[] = []

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-orphans-'))
  if (engine) buildTestImage()
})
after(async () => {
  await Promise.all(clients.map(async c => await c.stop()))
  await killAll()
  for (const p of groups) {
    try {
      process.kill(-p, 'SIGKILL')
    } catch {}
  }
  if (engine) for (const p of peers) removeLabelled(p)
  rmSync(dir, { recursive: true, force: true })
})

type Kind = 'process' | 'docker'

function conf(name: string, kind: Kind, graceS: number): string {
  const f = join(dir, name)
  const app = kind === 'docker' ? { Image: TEST_IMAGE, Port: 8080, Health: { Path: '/healthz' } } : helloApp()
  writeFileSync(
    f,
    JSON.stringify({
      Listen: ['/ip4/127.0.0.1/tcp/0'],
      Apps: { hello: app },
      Allocator: { Runtime: kind, DrainTimeoutS: 5, ReapGraceS: graceS }
    })
  )
  return f
}

interface Running {
  d: ReturnType<typeof spawnCli>
  peer: string
  admin: string
  /** The watchdog: the allocator's one child that is this executable, not an instance. */
  watchdog: number
}

async function allocator(kind: Kind, keyfile?: string, allocate = true, graceS = GRACE_S): Promise<Running> {
  const args = ['allocator', '--configfile', conf(`${kind}-${graceS}.json`, kind, graceS), '--admin', '127.0.0.1:0']
  const d = spawnCli([...args, ...(keyfile !== undefined ? ['--keyfile', keyfile] : ['--ephemeral'])], {
    env: { PHYSARUM_PSK: PSK, PHYSARUM_RUNTIME_DIR: join(dir, 'run') },
    cwd: dir
  })
  const m = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  await d.waitFor(/catalog: /)
  peers.push(m[2])
  const pid = d.child.pid ?? -1
  const watchdog = childrenOf(pid).find(c => readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('__watchdog'))
  assert.ok(watchdog !== undefined, 'the allocator runs a watchdog')
  if (!allocate) return { d, peer: m[2], admin, watchdog }
  const c = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [m[1]] } })
  clients.push(c)
  await waitFor('the client sees the allocator', () => c.membership.table.get(m[2])?.status === 'alive')
  const peer = peerIdFromString(m[2])
  await requestAllocation(c.node, peer, 'hello')
  await requestAllocation(c.node, peer, 'hello', { fresh: true })
  return { d, peer: m[2], admin, watchdog }
}

/** What of the allocator runs: process group ids (from its state file) or container ids (by its label). */
function left(kind: Kind, peer: string, stateDir: string): Array<number | string> {
  if (kind === 'docker') return labelled(peer)
  const file = join(stateDir, `instances-${peer}.json`)
  const saved = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Array<{ pid: number }>) : []
  return saved.map(e => e.pid)
}

async function instances(admin: string): Promise<Array<{ id: string; adopted: boolean }>> {
  return (await (await fetch(`http://${admin}/v1/instances`)).json()) as Array<{ id: string; adopted: boolean }>
}

for (const kind of ['process', 'docker'] as const) {
  const skip = kind === 'docker' && !engine ? 'no Docker engine answers' : false

  test(`${kind}: SIGKILL of an ephemeral allocator → within 5 s none of its instances is left`, { skip }, async () => {
    const a = await allocator(kind)
    const was = left(kind, a.peer, tmpdir())
    assert.equal(was.length, 2, `two instances run: ${was.join(', ')}`)
    if (kind === 'process') groups.push(...(was as number[]))
    a.d.child.kill('SIGKILL')
    await a.d.exited
    const t0 = Date.now()
    if (kind === 'process')
      await waitFor('no instance process is left', () => (was as number[]).every(p => !alive(p)), 5000)
    else await waitFor('no container with its label is left', () => labelled(a.peer).length === 0, 5000)
    assert.ok(Date.now() - t0 < 5000)
    await waitFor('the watchdog exits when done', () => !alive(a.watchdog), 5000)
  })

  test(`${kind}: a persistent allocator killed and started again within the grace adopts them`, { skip }, async () => {
    const stateDir = join(dir, `adopt-${kind}`)
    const keyfile = join(stateDir, 'allocator.key')
    const first = await allocator(kind, keyfile, true, ADOPT_GRACE_S)
    const was = left(kind, first.peer, stateDir)
    if (kind === 'process') groups.push(...(was as number[]))
    const ids = (await instances(first.admin)).map(i => i.id).sort()
    first.d.child.kill('SIGKILL')
    await first.d.exited
    const killed = Date.now()
    await sleep(1000)
    const second = await allocator(kind, keyfile, false, ADOPT_GRACE_S)
    assert.equal(second.peer, first.peer)
    assert.ok(Date.now() - killed < ADOPT_GRACE_S * 1000, 'started again within the grace')
    await waitFor('the old watchdog leaves them to its successor and exits', () => !alive(first.watchdog), 3000)
    // Past the grace: nothing of the adopted instances was removed.
    await sleep(Math.max(0, killed + ADOPT_GRACE_S * 1000 + 1000 - Date.now()))
    const now = await instances(second.admin)
    assert.deepEqual(
      now.map(i => [i.id, i.adopted]).sort(),
      ids.map(id => [id, true]),
      'both instances adopted, and still there after the grace'
    )
    if (kind === 'process') assert.ok((was as number[]).every(p => alive(p)))
    else assert.deepEqual(labelled(first.peer).sort(), (was as string[]).sort())
    second.d.child.kill('SIGTERM')
    assert.equal((await second.d.exited).code, 0)
    assert.deepEqual(left(kind, first.peer, stateDir), [], 'a clean stop removes them')
    await waitFor('the watchdog exits on a clean stop', () => !alive(second.watchdog), 3000)
  })

  test(`${kind}: a persistent allocator killed and not started again → removed after the grace`, { skip }, async () => {
    const stateDir = join(dir, `reap-${kind}`)
    const a = await allocator(kind, join(stateDir, 'allocator.key'))
    const was = left(kind, a.peer, stateDir)
    assert.equal(was.length, 2)
    if (kind === 'process') groups.push(...(was as number[]))
    a.d.child.kill('SIGKILL')
    await a.d.exited
    await sleep(1000)
    if (kind === 'process')
      assert.ok(
        (was as number[]).every(p => alive(p)),
        'within the grace they still run'
      )
    else assert.equal(labelled(a.peer).length, 2, 'within the grace they still run')
    await waitFor(
      'removed after the grace',
      () => (kind === 'process' ? (was as number[]).every(p => !alive(p)) : labelled(a.peer).length === 0),
      GRACE_S * 1000 + 5000
    )
    await waitFor('the watchdog exits when done', () => !alive(a.watchdog), 3000)
    assert.match(readFileSync(join(stateDir, `watchdog-${a.peer}.log`), 'utf8'), /did not start again within 3 s/)
  })
}

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
