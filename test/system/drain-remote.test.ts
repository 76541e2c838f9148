// `physarum drain PEER` of an allocator on another host (issue 16), all real processes on 127.0.0.1: three "hosts"
// (each its own HOME and runtime directory): allocators A and B, a proxy C. B lists A's peer ID (and a test node's) in
// Admin.Operators. From host A the drain of B goes through A's agent over /physarum/admin/1.0.0 and works; a second
// drain meanwhile is refused as already draining; `members` on both hosts shows B in maintenance, which survives B's
// restart; `--undo` from A ends it. From host C (not listed) it is refused in one line and changes nothing, until C is
// added to B's Admin.Operators by a SIGHUP; unknown and wrong peers are one line each; malformed admin messages from a
// raw libp2p node are refused and B keeps running.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { spawnCli, killAll, runCli, type Daemon } from '../helpers/cli.js'
import { HELLO_COMMAND, helloApp, waitFor } from '../helpers/cluster.js'
import { assertNothingLeft } from '../helpers/orphans.js'
import { AllocationError, requestAllocation } from '../../src/allocation/protocol.js'
import { ADMIN_PROTOCOL } from '../../src/cluster/admin/protocol.js'
import { createNode, type PhysarumNode } from '../../src/cluster/node.js'
import { ephemeralKey } from '../../src/cluster/identity.js'
import { resolvePsk } from '../../src/config/psk.js'

const PSK = '8'.repeat(64)
let dir: string
const raw: PhysarumNode[] = []

interface Node {
  d: Daemon
  addr: string
  peer: string
  admin: string
}

const host = (name: string): NodeJS.ProcessEnv => {
  const home = join(dir, name)
  mkdirSync(home, { recursive: true })
  return { PHYSARUM_PSK: PSK, HOME: home, PHYSARUM_RUNTIME_DIR: join(home, 'run') }
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-drain-remote-'))
})
after(async () => {
  await Promise.all(raw.map(async n => await n.stop()))
  await killAll()
  await assertNothingLeft()
  rmSync(dir, { recursive: true, force: true })
})

function conf(name: string, body: Record<string, unknown>): string {
  const f = join(dir, `${name}.json`)
  writeFileSync(
    f,
    JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'], Membership: { AnnounceIntervalMs: 1000 }, ...body })
  )
  return f
}

async function start(args: string[], env: NodeJS.ProcessEnv): Promise<Node> {
  const d = spawnCli([...args, '--admin', '127.0.0.1:0'], { cwd: env.HOME, env })
  const [, addr, peer] = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/, 20000)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  if (args[0] === 'allocator') await d.waitFor(/catalog: /, 20000)
  return { d, addr, peer, admin }
}

async function statusOf(env: NodeJS.ProcessEnv, peer: string): Promise<string | undefined> {
  const r = await runCli(['members', '--json'], { env })
  if (r.code !== 0) return undefined
  return (JSON.parse(r.stdout) as Array<{ peer: string; status: string }>).find(m => m.peer === peer)?.status
}

const drainState = async (n: Node): Promise<string> =>
  ((await (await fetch(`http://${n.admin}/v1/drain`)).json()) as { state: string }).state

const instancesOf = async (n: Node): Promise<Array<{ app: string }>> =>
  (await (await fetch(`http://${n.admin}/v1/instances`)).json()) as Array<{ app: string }>

/** A bare libp2p node in the cluster's private network (no membership): the test's own peer. */
async function rawNode(): Promise<PhysarumNode> {
  const n = await createNode({
    privateKey: await ephemeralKey(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    psk: resolvePsk({ Psk: PSK })?.key
  })
  raw.push(n)
  return n
}

/** Writes `bytes` on a new admin stream to `to`; what came back (text) and whether the stream was reset. */
async function rawExchange(from: PhysarumNode, to: Node, bytes: Uint8Array): Promise<{ text: string; reset: boolean }> {
  const stream = await from.dialProtocol(multiaddr(to.addr), ADMIN_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  stream.send(bytes)
  // Our side is done: the stream ends once the allocator's is too (or it resets it).
  await stream.close().catch(() => {})
  const chunks: Buffer[] = []
  let reset = false
  const timer = setTimeout(() => {
    stream.abort(new Error('test timeout'))
  }, 5000)
  try {
    for await (const c of stream) chunks.push(Buffer.from(c.subarray()))
  } catch {
    reset = true
  } finally {
    clearTimeout(timer)
  }
  return { text: Buffer.concat(chunks).toString('utf8'), reset }
}

/** A length-prefixed (unsigned varint) frame. */
function frame(payload: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = payload.length
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  len.push(n)
  return Buffer.concat([Buffer.from(len), payload])
}

test('drain PEER on another host: authorized from A, refused from C, survives a restart, --undo', async () => {
  const envA = host('a')
  const envB = host('b')
  const envC = host('c')
  // A's copy of the app takes 3 s to start: the drain of B that moves it to A is under way for that long.
  const slow = helloApp({ Command: ['sh', '-c', 'sleep 3; exec "$@"', 'sh', ...HELLO_COMMAND] })
  const a = await start(
    ['allocator', '--configfile', conf('a', { Apps: { hello: slow }, Allocator: { Runtime: 'process' } })],
    envA
  )
  const operator = await rawNode()
  const stranger = await rawNode()
  const confB = conf('b', {
    Apps: { hello: helloApp() },
    Bootstraps: [a.addr],
    Allocator: { Runtime: 'process', DrainTimeoutS: 5 },
    Admin: { Operators: [a.peer, operator.peerId.toString()] }
  })
  const show = await runCli(['config', 'show', '--configfile', confB], { env: envB })
  assert.match(show.stdout, new RegExp(`Admin\\.Operators +=.*${a.peer}`), show.stdout + show.stderr)
  let b = await start(['allocator', '--configfile', confB], envB)
  const c = await start(
    ['proxy', '--port', '0', '--ephemeral', '--configfile', conf('c', { Bootstraps: [a.addr] })],
    envC
  )
  await waitFor('A and C see B', async () => (await statusOf(envA, b.peer)) === 'alive', 15000, 200)
  await waitFor('C sees B', async () => (await statusOf(envC, b.peer)) === 'alive', 15000, 200)
  await operator.dial(multiaddr(b.addr))
  await requestAllocation(operator, peerIdFromString(b.peer), 'hello')
  assert.equal((await instancesOf(b)).length, 1, 'B serves hello')

  // Not authorized: host C's agent is not in B's Admin.Operators. One line, exit 1, and nothing changes.
  const refused = await runCli(['drain', b.peer], { env: envC })
  assert.equal(refused.code, 1)
  assert.equal(
    refused.stderr,
    `physarum: not authorized: ${b.peer} takes admin requests only from the peers in its Admin.Operators, and ${c.peer} is not one\n`
  )
  assert.equal(await drainState(b), 'serving')
  assert.equal((await instancesOf(b)).length, 1)
  await b.d.waitFor(new RegExp(`admin request from ${c.peer} refused: not authorized`))

  // Unknown peer, a proxy, the local agent itself: one line each.
  const nobody = peerIdFromPrivateKey(await ephemeralKey()).toString()
  const unknown = await runCli(['drain', nobody], { env: envA })
  assert.equal(unknown.code, 1)
  assert.equal(unknown.stderr, `physarum: unknown peer ${nobody}: not a member of the cluster that ${a.peer} sees\n`)
  const proxy = await runCli(['drain', c.peer], { env: envA })
  assert.equal(proxy.stderr, `physarum: ${c.peer} is a proxy, not an allocator\n`)
  const bad = await runCli(['drain', 'not-a-peer'], { env: envA })
  assert.equal(bad.stderr, 'physarum: "not-a-peer" is not a peer ID\n')

  // Malformed admin messages from an authorized raw node, and any message from a stranger: refused, B keeps running.
  const enc = new TextEncoder()
  for (const [what, bytes, expect] of [
    ['not JSON', frame(enc.encode('{{{ not json')), /request is not UTF-8 JSON/],
    [
      'an unknown op',
      frame(enc.encode('{"v":1,"id":"x","op":"reboot"}')),
      /invalid request: \/op must be equal to one/
    ],
    ['an extra key', frame(enc.encode('{"v":1,"id":"x","op":"undo","force":true}')), /must NOT have additional/],
    ['a huge length prefix', Buffer.from([0xff, 0xff, 0xff, 0x7f]), /larger than/],
    ['a broken length prefix', Buffer.alloc(12, 0xff), /larger than|broken length prefix/]
  ] as const) {
    const r = await rawExchange(operator, b, bytes)
    assert.ok(r.reset || expect.test(r.text), `${what}: refused (${r.text})`)
    if (r.text !== '') assert.match(r.text, /BAD_REQUEST/, what)
    await b.d.waitFor(new RegExp(`admin request from ${operator.peerId.toString()} refused: `))
    assert.equal((await fetch(`http://${b.admin}/v1/health`)).status, 200, `${what}: B keeps running`)
  }
  const t = Date.now()
  const s = await rawExchange(stranger, b, frame(enc.encode('{"v":1,"id":"x","op":"drain"}')))
  assert.match(s.text, /"code":"NOT_AUTHORIZED"/)
  assert.ok(Date.now() - t < 4000, 'the refusal ends the stream (no wait for a timeout)')
  assert.equal(await drainState(b), 'serving', 'nothing changed')
  assert.equal(b.d.child.exitCode, null)

  // Authorized: from host A, through A's agent. A second drain while it runs is refused.
  const drain = runCli(['drain', b.peer, '--deadline', '20s', '--json'], { env: envA, timeoutMs: 90000 })
  await waitFor('B is draining', async () => (await drainState(b)) === 'draining', 10000, 50)
  const again = await runCli(['drain', b.peer], { env: envA })
  assert.equal(again.code, 1)
  assert.match(again.stderr, new RegExp(`^physarum: ${b.peer} refused: already draining: [^\\n]+\\n$`))
  const drained = await drain
  assert.equal(drained.code, 0, drained.stderr)
  const report = JSON.parse(drained.stdout) as { state: string; moved: Array<{ app: string; to: string }> }
  assert.equal(report.state, 'maintenance')
  assert.deepEqual(
    report.moved.map(m => [m.app, m.to]),
    [['hello', a.peer]]
  )
  assert.deepEqual(await instancesOf(b), [])
  await waitFor('members on A shows B in maintenance', async () => (await statusOf(envA, b.peer)) === 'maintenance')
  assert.equal(await statusOf(envB, b.peer), 'maintenance', 'members on B too')

  // The maintenance survives a restart of B (kept beside its key).
  b.d.child.kill('SIGTERM')
  assert.equal((await b.d.exited).code, 0)
  assert.ok(existsSync(join(envB.HOME as string, '.physarum', `maintenance-${b.peer}.json`)))
  b = await start(['allocator', '--configfile', confB], envB)
  await b.d.waitFor(/in maintenance since .* no allocations until physarum drain --undo/)
  assert.equal(await drainState(b), 'maintenance')
  assert.equal(await statusOf(envB, b.peer), 'maintenance')
  await waitFor('members on A shows the restarted B in maintenance', async () => {
    return (await statusOf(envA, b.peer)) === 'maintenance'
  })
  await operator.dial(multiaddr(b.addr))
  await assert.rejects(
    requestAllocation(operator, peerIdFromString(b.peer), 'hello'),
    (err: Error) => err instanceof AllocationError && err.code === 'DRAINING'
  )

  // --undo from A: in service again, and the file is gone (a restart now serves).
  const undo = await runCli(['drain', b.peer, '--undo'], { env: envA })
  assert.equal(undo.code, 0, undo.stderr)
  assert.equal(undo.stdout, `${b.peer}: back in service, taking allocations again\n`)
  assert.equal(await drainState(b), 'serving')
  assert.ok(!existsSync(join(envB.HOME as string, '.physarum', `maintenance-${b.peer}.json`)))
  await waitFor('members on A shows B alive', async () => (await statusOf(envA, b.peer)) === 'alive')
  const inst = await requestAllocation(operator, peerIdFromString(b.peer), 'hello')
  assert.equal(inst.peer, b.peer)

  // Admin.Operators is reloaded (SIGHUP): with C's proxy listed, host C may act on B too.
  writeFileSync(
    confB,
    JSON.stringify({
      ...(JSON.parse(readFileSync(confB, 'utf8')) as object),
      Admin: { Operators: [a.peer, c.peer] }
    })
  )
  b.d.child.kill('SIGHUP')
  await b.d.waitFor(/SIGHUP: configuration reloaded/)
  const fromC = await runCli(['drain', b.peer, '--undo'], { env: envC })
  assert.equal(fromC.code, 0, fromC.stderr)
  assert.equal(fromC.stdout, `${b.peer}: back in service, taking allocations again\n`)

  for (const n of [c, a, b]) n.d.child.kill('SIGTERM')
  for (const n of [c, a, b]) assert.equal((await n.d.exited).code, 0)
})
