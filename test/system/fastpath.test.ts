// The local fast path (issue 18), all real processes on one host: an allocator and two proxies (one with
// PHYSARUM_LOCAL_FAST_PATH=0), later a second allocator. A proxy sends requests for the same-host allocator's
// instances straight to them over loopback: its forwards counter says loopback and the allocator's serving side sees
// none over libp2p; x-physarum-instance names the instance and its allocator; two instances share the load; a killed
// instance's requests go to the other one with no client error; an instance used only over the fast path is not culled
// while in use and is once idle; a drained allocator gets no new request; with the fast path off, libp2p again.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as h2connect } from 'node:http2'
import { resolve } from 'node:path'
import { request } from 'undici'
import WebSocket from 'ws'
import { spawnCli, killAll, runCli, childrenOf, type Daemon } from '../helpers/cli.js'
import { helloApp, waitFor, REPO } from '../helpers/cluster.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '5'.repeat(64)
let dir: string
let env: NodeJS.ProcessEnv

interface Node {
  d: Daemon
  addr: string
  peer: string
  admin: string
  http?: string
}

interface Inst {
  id: string
  app: string
  state: string
  inFlight: number
}

let alloc: Node
let proxy: Node
let slow: Node

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-fastpath-'))
  // A WebSocket echo (ws's own server) and an h2c app, beside the hello app.
  writeFileSync(
    join(dir, 'ws-echo.cjs'),
    `const http = require('node:http')
const { WebSocketServer } = require(${JSON.stringify(resolve(REPO, 'node_modules/ws'))})
const server = http.createServer((req, res) => res.end('ok\\n'))
new WebSocketServer({ server }).on('connection', ws => ws.on('message', (d, bin) => ws.send(d, { binary: bin })))
server.listen(Number(process.env.PORT), '127.0.0.1')
`
  )
  writeFileSync(
    join(dir, 'h2-app.cjs'),
    `require('node:http2').createServer((req, res) => res.end('h2 ' + req.httpVersion + ' ' + req.url))
  .listen(Number(process.env.PORT), '127.0.0.1')
`
  )
  env = { PHYSARUM_PSK: PSK, PHYSARUM_RUNTIME_DIR: join(dir, 'run'), HOME: dir, XDG_RUNTIME_DIR: '' }
  writeFileSync(
    join(dir, 'conf.json'),
    JSON.stringify({
      Listen: ['/ip4/127.0.0.1/tcp/0'],
      Apps: {
        // Two kept warm: balancing and a killed instance have somewhere to go.
        hello: helloApp({ MinInstances: 2, MaxInstances: 4 }),
        brief: helloApp({ IdleTimeoutS: 2, MaxInstances: 1 }),
        wsecho: { Command: [process.execPath, join(dir, 'ws-echo.cjs')], Health: { Tcp: true }, IdleTimeoutS: 300 },
        h2app: { Command: [process.execPath, join(dir, 'h2-app.cjs')], Protocol: 'h2c', Health: { Tcp: true } }
      },
      Allocator: { Runtime: 'process', DrainTimeoutS: 5 },
      Membership: { AnnounceIntervalMs: 1000 }
    })
  )
  alloc = await start(['allocator'])
  proxy = await start(['proxy', '--port', '0', '--bootstrap', alloc.addr])
  slow = await start(['proxy', '--port', '0', '--bootstrap', alloc.addr], { PHYSARUM_LOCAL_FAST_PATH: '0' })
  await waitFor(
    'two ready instances of hello',
    async () =>
      (await instances(alloc)).filter(i => i.app === 'hello' && i.state === 'ready').length === 2 ? true : undefined,
    30000
  )
})
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

async function start(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<Node> {
  const d = spawnCli([...args, '--configfile', join(dir, 'conf.json'), '--ephemeral', '--admin', '127.0.0.1:0'], {
    cwd: dir,
    env: { ...env, ...extra }
  })
  const [, addr, peer] = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/, 20000)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  const http =
    args[0] === 'proxy' ? (await d.waitFor(/proxy listening on (http:\/\/127\.0\.0\.1:\d+)\//))[1] : undefined
  if (args[0] === 'allocator') await d.waitFor(/catalog: /)
  return { d, addr, peer, admin, http }
}

const instances = async (n: Node): Promise<Inst[]> =>
  (await (await fetch(`http://${n.admin}/v1/instances`)).json()) as Inst[]

/** The sum of a counter's series whose labels include all of `labels`. */
async function counter(n: Node, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://${n.admin}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop())
  }
  return sum
}

async function get(p: Node, path: string): Promise<{ status: number; instance: string; body: string }> {
  const r = await request(`${p.http as string}${path}`)
  return { status: r.statusCode, instance: String(r.headers['x-physarum-instance']), body: await r.body.text() }
}

/** The first request may go over libp2p (a new instance, not in the last sync yet): waits until one is loopback. */
async function warm(p: Node, app: string): Promise<void> {
  await waitFor(
    `a request for ${app} over the fast path`,
    async () => {
      const before = await counter(p, 'physarum_proxy_forwards_total', { app, path: 'loopback' })
      assert.equal((await get(p, `/${app}/hello`)).status, 200)
      return (await counter(p, 'physarum_proxy_forwards_total', { app, path: 'loopback' })) > before ? true : undefined
    },
    10000,
    100
  )
}

/** The pid of an instance: the descendant of the allocator whose environment names it. */
function instancePid(allocPid: number, id: string): number | undefined {
  const queue = [allocPid]
  while (queue.length > 0) {
    const pid = queue.shift() as number
    for (const c of childrenOf(pid)) {
      try {
        if (readFileSync(`/proc/${c}/environ`, 'utf8').split('\0').includes(`PHYSARUM_INSTANCE=${id}`)) return c
      } catch {}
      queue.push(c)
    }
  }
  return undefined
}

test('same host: requests go straight to the instances, both of them, with x-physarum-instance', async () => {
  await warm(proxy, 'hello')
  const ids = new Set((await instances(alloc)).filter(i => i.app === 'hello').map(i => i.id))
  const viaLibp2p = await counter(alloc, 'physarum_forwarded_requests_total', { app: 'hello' })
  const loopback = await counter(proxy, 'physarum_proxy_forwards_total', { app: 'hello', path: 'loopback' })
  const seen = new Map<string, number>()
  // Four at a time: the balancer spreads them.
  for (let round = 0; round < 15; round++) {
    const rs = await Promise.all([0, 1, 2, 3].map(async () => await get(proxy, '/hello/slow?ms=20')))
    for (const r of rs) {
      assert.equal(r.status, 200)
      const m = /^(\w+)@(\w+)$/.exec(r.instance)
      assert.ok(m !== null, r.instance)
      assert.equal(m[2], alloc.peer)
      assert.ok(ids.has(m[1]), `${m[1]} is one of ${[...ids].join(', ')}`)
      seen.set(m[1], (seen.get(m[1]) ?? 0) + 1)
    }
  }
  assert.equal(seen.size, 2, `both instances served: ${JSON.stringify([...seen])}`)
  for (const n of seen.values()) assert.ok(n >= 6, `each took a fair share: ${JSON.stringify([...seen])}`)
  assert.equal(await counter(proxy, 'physarum_proxy_forwards_total', { app: 'hello', path: 'loopback' }), loopback + 60)
  // The allocator's serving side saw none of them.
  assert.equal(await counter(alloc, 'physarum_forwarded_requests_total', { app: 'hello' }), viaLibp2p)
})

test('an instance killed: its requests go to the other one, no client error', async () => {
  await warm(proxy, 'hello')
  const hello = (await instances(alloc)).filter(i => i.app === 'hello' && i.state === 'ready')
  assert.equal(hello.length, 2)
  const victim = hello[0]
  const pid = instancePid(alloc.d.child.pid as number, victim.id)
  assert.ok(pid !== undefined, `found the process of ${victim.id}`)
  // Requests in flight while it dies, and right after (before any sync says it is gone).
  const load = Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      await new Promise(resolve => setTimeout(resolve, i * 5))
      return await get(proxy, '/hello/hello')
    })
  )
  process.kill(pid, 'SIGKILL')
  for (const r of await load) {
    assert.equal(r.status, 200, r.body)
    assert.equal(r.body, 'hello world\n')
  }
  const after = await Promise.all(Array.from({ length: 10 }, async () => await get(proxy, '/hello/hello')))
  for (const r of after) {
    assert.equal(r.status, 200)
    assert.ok(!r.instance.startsWith(`${victim.id}@`), 'the dead instance gets nothing')
  }
})

test('an instance used only over the fast path is not culled past IdleTimeoutS; it is once idle', async () => {
  await warm(proxy, 'brief')
  const [inst] = (await instances(alloc)).filter(i => i.app === 'brief')
  const viaLibp2p = await counter(alloc, 'physarum_forwarded_requests_total', { app: 'brief' })
  // 5 s of short requests (IdleTimeoutS is 2), 300 ms apart: mostly nothing is in flight when the proxy syncs, so
  // what keeps the instance is the proxy's report that it sent some.
  const until = Date.now() + 5000
  while (Date.now() < until) {
    const r = await get(proxy, '/brief/hello')
    assert.equal(r.status, 200)
    assert.equal(r.instance, `${inst.id}@${alloc.peer}`)
    await new Promise(resolve => setTimeout(resolve, 300))
  }
  assert.equal(await counter(alloc, 'physarum_forwarded_requests_total', { app: 'brief' }), viaLibp2p)
  assert.ok(
    (await instances(alloc)).some(i => i.id === inst.id && i.state === 'ready'),
    'still there'
  )
  // Idle now: culled after its IdleTimeoutS (the allocator's cull tick is 1 s).
  await waitFor(
    'the idle instance culled',
    async () => ((await instances(alloc)).some(i => i.id === inst.id) ? undefined : true),
    10000,
    200
  )
})

/** One HTTP/2 request (prior knowledge, h2c) to the proxy. */
async function h2get(p: Node, path: string): Promise<{ status: number; instance: string; body: string }> {
  const session = h2connect(p.http as string)
  try {
    return await new Promise((resolve, reject) => {
      const s = session.request({ ':path': path })
      let body = ''
      let head: Record<string, unknown> = {}
      s.on('response', h => (head = h))
      s.on('data', (c: Buffer) => (body += c.toString()))
      s.on('end', () => {
        resolve({ status: Number(head[':status']), instance: String(head['x-physarum-instance']), body })
      })
      s.on('error', reject)
    })
  } finally {
    session.close()
  }
}

test('WebSocket and h2c take the fast path too; an open socket counts on the allocator as a request in flight', async () => {
  const loop = (app: string): Promise<number> =>
    counter(proxy, 'physarum_proxy_forwards_total', { app, path: 'loopback' })
  // h2c: the first request may be cold (over libp2p); then straight.
  await waitFor(
    'an h2c request over the fast path',
    async () => {
      const before = await loop('h2app')
      const r = await h2get(proxy, '/h2app/x')
      assert.equal(r.status, 200)
      assert.equal(r.body, 'h2 2.0 /x')
      assert.match(r.instance, new RegExp(`^\\w+@${alloc.peer}$`))
      return (await loop('h2app')) > before ? true : undefined
    },
    10000,
    100
  )
  await warm(proxy, 'wsecho')
  const before = await loop('wsecho')
  const ws = new WebSocket(`${(proxy.http as string).replace('http', 'ws')}/wsecho/socket`)
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const echoed = new Promise<string>(resolve => ws.once('message', (d: Buffer) => resolve(d.toString())))
    ws.send('over loopback')
    assert.equal(await echoed, 'over loopback')
    assert.equal(await loop('wsecho'), before + 1)
    // The allocator's serving side took no upgrade; the proxy's next sync says the socket is open.
    assert.equal(await counter(alloc, 'physarum_upgraded_connections', { app: 'wsecho' }), 0)
    await waitFor('the open socket in flight on the allocator', async () =>
      (await instances(alloc)).some(i => i.app === 'wsecho' && i.inFlight >= 1) ? true : undefined
    )
  } finally {
    ws.close()
  }
  await waitFor('the closed socket no longer in flight', async () =>
    (await instances(alloc)).some(i => i.app === 'wsecho' && i.inFlight === 0) ? true : undefined
  )
})

test('Proxy.LocalFastPath false (PHYSARUM_LOCAL_FAST_PATH=0): over libp2p, the same answers', async () => {
  const viaLibp2p = await counter(alloc, 'physarum_forwarded_requests_total', { app: 'hello' })
  for (let i = 0; i < 10; i++) {
    const r = await get(slow, '/hello/hello')
    assert.equal(r.status, 200)
    assert.match(r.instance, new RegExp(`^\\w+@${alloc.peer}$`))
  }
  assert.equal(await counter(slow, 'physarum_proxy_forwards_total', { path: 'loopback' }), 0)
  assert.ok((await counter(slow, 'physarum_proxy_forwards_total', { app: 'hello', path: 'libp2p' })) >= 10)
  assert.ok((await counter(alloc, 'physarum_forwarded_requests_total', { app: 'hello' })) >= viaLibp2p + 10)
  const shown = await runCli(['config', 'show', '--role', 'proxy', '--sources'], {
    env: { ...env, PHYSARUM_LOCAL_FAST_PATH: '0' }
  })
  assert.match(shown.stdout, /Proxy\.LocalFastPath\s+= false\s+\(env\)/)
})

test('a drained allocator: no new request goes to it over the fast path, and none fails', async () => {
  const other = await start(['allocator', '--bootstrap', alloc.addr])
  await waitFor('the proxy sees the second allocator', async () => {
    const r = await runCli(['members', '--agent', proxy.admin, '--json'], { env })
    return (JSON.parse(r.stdout) as Array<{ peer: string; status: string }>).some(
      m => m.peer === other.peer && m.status === 'alive'
    )
      ? true
      : undefined
  })
  let loading = true
  const failures: string[] = []
  const load = (async () => {
    while (loading) {
      const r = await get(proxy, '/hello/hello')
      if (r.status !== 200) failures.push(`${r.status} ${r.body}`)
    }
  })()
  const drained = await runCli(['drain', alloc.peer, '--deadline', '20s', '--json'], { env, timeoutMs: 60000 })
  assert.equal(drained.code, 0, drained.stderr)
  await waitFor('the proxy sends to the other allocator', async () =>
    (await get(proxy, '/hello/hello')).instance.endsWith(`@${other.peer}`) ? true : undefined
  )
  const loopback = await counter(proxy, 'physarum_proxy_forwards_total', { app: 'hello', path: 'loopback' })
  for (let i = 0; i < 20; i++) {
    const r = await get(proxy, '/hello/hello')
    assert.equal(r.status, 200)
    assert.ok(r.instance.endsWith(`@${other.peer}`), `${r.instance} is on the allocator that was not drained`)
  }
  loading = false
  await load
  assert.deepEqual(failures, [])
  assert.equal((await instances(alloc)).filter(i => i.app === 'hello').length, 0)
  // The other allocator is on this host too: its instances are reached straight as well.
  assert.ok(
    (await counter(proxy, 'physarum_proxy_forwards_total', { app: 'hello', path: 'loopback' })) >= loopback + 15
  )

  // Back in service, then the other one stopped (SIGTERM, its quick drain) under load: nothing fails either.
  const undo = await runCli(['drain', alloc.peer, '--undo'], { env })
  assert.equal(undo.code, 0, undo.stderr)
  await waitFor(
    'the first allocator serving again',
    async () => ((await get(proxy, '/hello/hello')).instance.endsWith(`@${alloc.peer}`) ? true : undefined),
    20000,
    100
  )
  loading = true
  const stopFailures: string[] = []
  const load2 = (async () => {
    while (loading) {
      const r = await get(proxy, '/hello/slow?ms=50')
      if (r.status !== 200) stopFailures.push(`${r.status} ${r.body}`)
    }
  })()
  await new Promise(resolve => setTimeout(resolve, 500))
  other.d.child.kill('SIGTERM')
  await other.d.exited
  await new Promise(resolve => setTimeout(resolve, 500))
  loading = false
  await load2
  assert.deepEqual(stopFailures, [])
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
