// `physarum drain` (issue 16, item 4) under steady load, all real processes: two allocators and a proxy. Draining
// the allocator that serves the app moves it to the other one: no request fails, the replacement is ready before the
// local instance stops, a long request in flight finishes, `members` shows the drained allocator in maintenance, it
// takes no allocation, and `drain --undo` brings it back.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { spawnCli, killAll, runCli, type Daemon } from '../helpers/cli.js'
import { helloApp, startAgent, waitFor } from '../helpers/cluster.js'
import { AllocationError, requestAllocation } from '../../src/allocation/protocol.js'
import type { Agent } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '7'.repeat(64)
let dir: string
let env: NodeJS.ProcessEnv
const agents: Agent[] = []

interface Node {
  d: Daemon
  addr: string
  peer: string
  admin: string
  http?: string
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-drain-'))
  env = { PHYSARUM_PSK: PSK, PHYSARUM_RUNTIME_DIR: join(dir, 'run'), HOME: dir }
  writeFileSync(
    join(dir, 'conf.json'),
    JSON.stringify({
      Listen: ['/ip4/127.0.0.1/tcp/0'],
      Apps: { hello: helloApp() },
      Allocator: { Runtime: 'process', DrainTimeoutS: 5 },
      Membership: { AnnounceIntervalMs: 1000 }
    })
  )
})
after(async () => {
  await Promise.all(agents.map(async a => await a.stop()))
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

async function start(args: string[]): Promise<Node> {
  const d = spawnCli([...args, '--configfile', join(dir, 'conf.json'), '--ephemeral', '--admin', '127.0.0.1:0'], {
    cwd: dir,
    env
  })
  const [, addr, peer] = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/, 20000)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  const http =
    args[0] === 'proxy' ? (await d.waitFor(/proxy listening on (http:\/\/127\.0\.0\.1:\d+)\//))[1] : undefined
  if (args[0] === 'allocator') await d.waitFor(/catalog: /)
  return { d, addr, peer, admin, http }
}

interface Inst {
  id: string
  app: string
  state: string
  readyAt: string | null
}
const instances = async (n: Node): Promise<Inst[]> =>
  (await (await fetch(`http://${n.admin}/v1/instances`)).json()) as Inst[]

async function statusOf(viewer: Node, peer: string): Promise<string | undefined> {
  const r = await runCli(['members', '--agent', viewer.admin, '--json'], { env })
  return (JSON.parse(r.stdout) as Array<{ peer: string; status: string }>).find(m => m.peer === peer)?.status
}

test('drain under steady load: moved first, nothing fails, maintenance until --undo', async () => {
  const a = await start(['allocator'])
  const proxy = await start(['proxy', '--port', '0', '--bootstrap', a.addr])
  // The steady load: two client loops through the proxy, each request checked.
  let stop = false
  let ok = 0
  const failures: string[] = []
  const loop = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await fetch(`${proxy.http}/hello/hello`, { signal: AbortSignal.timeout(15000) })
        const body = await r.text()
        if (r.status === 200 && body === 'hello world\n') ok++
        else failures.push(`${r.status} ${body.slice(0, 200)}`)
      } catch (err) {
        failures.push((err as Error).message)
      }
    }
  }
  const loops = [loop(), loop()]
  await waitFor('the load is served by an instance on A', async () => ok > 20 && (await instances(a)).length > 0, 20000)
  const [onA] = await instances(a)
  const b = await start(['allocator', '--bootstrap', a.addr])
  await waitFor('A sees B', async () => (await statusOf(a, b.peer)) === 'alive', 10000)

  // Two allocators here: a drain must name one.
  const ambiguous = await runCli(['drain'], { env })
  assert.equal(ambiguous.code, 2)
  assert.match(ambiguous.stderr, /^physarum: 2 allocators run on this host: name one \(physarum drain PEER\)/)
  const unknown = await runCli(['drain', proxy.peer], { env })
  assert.equal(unknown.code, 2)
  assert.equal(unknown.stderr, `physarum: ${proxy.peer} is a proxy on this host, not an allocator\n`)

  // A long request in flight on A's instance when the drain begins: it finishes.
  const slow = fetch(`${proxy.http}/hello/slow?ms=2500`).then(async r => [r.status, await r.text()] as const)
  await new Promise(resolve => setTimeout(resolve, 300))
  // Watch both sides: A's instance must not stop before B has a ready one.
  const seen: string[] = []
  let watching = true
  const watch = (async () => {
    while (watching) {
      const [ia, ib] = await Promise.all([instances(a), instances(b)])
      const aHas = ia.some(i => i.id === onA.id)
      const bReady = ib.some(i => i.app === 'hello' && i.state === 'ready')
      if (!aHas && !bReady) seen.push('A stopped before B was ready')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })()
  const drained = await runCli(['drain', a.peer, '--deadline', '20s', '--json'], { env, timeoutMs: 60000 })
  watching = false
  await watch
  assert.equal(drained.code, 0, drained.stderr)
  const report = JSON.parse(drained.stdout) as {
    state: string
    moved: Array<{ app: string; to: string; stopped: number; cutOff: number }>
    stranded: unknown[]
  }
  assert.equal(report.state, 'maintenance')
  assert.deepEqual(
    report.moved.map(m => [m.app, m.to, m.stopped, m.cutOff]),
    [['hello', b.peer, 1, 0]]
  )
  assert.deepEqual(report.stranded, [])
  assert.deepEqual(seen, [], 'the replacement was ready before the local instance stopped')
  assert.deepEqual(await slow, [200, 'slept 2500 ms\n'], 'the long request in flight finished')
  assert.deepEqual(await instances(a), [], "A's instance stopped")

  // Keep the load on B a little, then stop it: nothing failed at any point.
  const before = ok
  await waitFor('the load goes on, on B', () => ok > before + 20, 10000)
  stop = true
  await Promise.all(loops)
  assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} requests failed`)

  // A stays, in maintenance, and takes no allocation.
  assert.equal(await statusOf(proxy, a.peer), 'maintenance')
  assert.equal(await statusOf(a, a.peer), 'maintenance')
  const client = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [a.addr] } })
  agents.push(client)
  await waitFor('the client sees A', () => client.membership.table.get(a.peer) !== undefined)
  await assert.rejects(
    requestAllocation(client.node, peerIdFromString(a.peer), 'hello'),
    (err: Error) => err instanceof AllocationError && err.code === 'DRAINING'
  )

  // --undo: in service again.
  const undo = await runCli(['drain', a.peer, '--undo'], { env })
  assert.equal(undo.code, 0, undo.stderr)
  assert.equal(undo.stdout, `${a.peer}: back in service, taking allocations again\n`)
  const inst = await requestAllocation(client.node, peerIdFromString(a.peer), 'hello')
  assert.ok(inst.id.length > 0)
  await waitFor('members shows A alive again', async () => (await statusOf(proxy, a.peer)) === 'alive', 10000)

  // A bad call changes nothing and gets a one-line JSON error; without the admin token, a 401 before the body is read.
  const authorization = `Bearer ${readFileSync(join(dir, '.physarum', 'admin.token'), 'utf8').trim()}`
  for (const [body, status, error, headers] of [
    ['{}', 401, /needs the admin token/, {}],
    ['{}', 401, /wrong admin token/, { authorization: 'Bearer 00' }],
    ['{"deadlineS": -1}', 400, /^\/deadlineS must be >= 0$/, { authorization }],
    ['{"undo": true, "force": 1}', 400, /^body must NOT have additional properties: "force"$/, { authorization }],
    ['not json', 400, /^body is not JSON/, { authorization }],
    ['[1]', 400, /^body must be object$/, { authorization }]
  ] as const) {
    const r = await fetch(`http://${a.admin}/v1/drain`, { method: 'POST', body, headers })
    assert.equal(r.status, status, body)
    const answer = (await r.json()) as { error: string }
    assert.match(answer.error, error, body)
  }
  assert.deepEqual(await (await fetch(`http://${a.admin}/v1/drain`)).json(), { state: 'serving' })
  const put = await fetch(`http://${a.admin}/v1/drain`, { method: 'PUT' })
  assert.equal(put.status, 405)
  await put.body?.cancel()

  for (const n of [proxy, a, b]) n.d.child.kill('SIGTERM')
  for (const n of [proxy, a, b]) assert.equal((await n.d.exited).code, 0)
})

test('drain: bad input gets one line, exit 2', async () => {
  const d = await runCli(['drain', '--deadline', 'soon'], { env })
  assert.equal(d.code, 2)
  assert.equal(d.stderr, 'physarum: --deadline must be a duration such as 30s, 5m or 1h (at most 24h), got "soon"\n')
  const both = await runCli(['drain', 'x', '--self'], { env })
  assert.equal(both.stderr, 'physarum: name a PEER or --self, not both\n')
  // Port 9 (discard): nothing listens. (Without --agent the allocator's default admin port is asked too, which another
  // allocator on this host may hold.)
  const none = await runCli(['drain', '--agent', '127.0.0.1:9'], { env })
  assert.equal(none.code, 2)
  assert.equal(none.stderr, 'physarum: no allocator answers on this host (asked 127.0.0.1:9)\n')
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
