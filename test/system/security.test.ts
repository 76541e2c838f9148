// Security: the private network (no PSK or another PSK: no connection), the catalog as
// the only thing an allocator runs (crafted requests with Image, Command, Env, Binds,
// Privileged or abused requirements start nothing and pass nothing through), the
// per-peer rate limit against a flooding peer, instance ports on 127.0.0.1 only
// (process runtime and Docker), key and PSK files 0600 and refused when exposed, admin
// APIs on loopback by default (both roles, through the real CLI), and the catalog's
// memory, CPU and pids limits on containers (docker inspect). Targets are CLI child
// processes, except the Docker allocator, which runs in-process like test/system/docker.test.ts.
// PHYSARUM_FULL=1 sends more crafted requests and floods for longer.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { killAll, spawnCli, runCli, alive, childrenOf, type Daemon } from '../helpers/cli.js'
import { startAgent, startAllocator, addrOf, waitFor, HELLO_COMMAND } from '../helpers/cluster.js'
import { newCluster, sweepClusters, members as membersAt, type Started } from '../helpers/daemons.js'
import { dockerReady, buildTestImage, labelled, stopAndSweep, inspect, TEST_IMAGE } from '../helpers/docker.js'
import { fuzz, fuzzSeed, describeReport, hostileJson, utf8, type Rng } from '../helpers/fuzz.js'
import { rawPeer, readAll, varint, listening, HELLO } from '../helpers/target.js'
import {
  ALLOC_PROTOCOL,
  AllocationError,
  requestAllocation,
  validateRequest,
  validateResponse,
  type AllocResponse
} from '../../src/allocation/protocol.js'
import { HTTP_PROTOCOL } from '../../src/forward/protocol.js'
import { loadOrCreateKey } from '../../src/cluster/identity.js'
import { pskHex, resolvePsk } from '../../src/config/psk.js'
import { ConfigError } from '../../src/config/errors.js'
import { builtinDefaults } from '../../src/config/defaults.js'
import type { PhysarumNode } from '../../src/cluster/node.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { Agent } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const FULL = process.env.PHYSARUM_FULL === '1'
const SEED = fuzzSeed()
const PSK = 'security-suite-key'
const RATE = { PerSecond: 5, Burst: 10 }
const engine = dockerReady()
if (!engine) console.log('# SKIP Docker security tests: no Docker engine answers (docker info failed)')
console.log(`# security (${FULL ? 'full' : 'short'} form): seed ${SEED}; replay with PHYSARUM_FUZZ_SEED=${SEED}`)

const cmdline = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter(s => s !== '')
const environ = (pid: number): Record<string, string> =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(s => s !== '')
      .map(kv => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])
  )

/**
 * An instance process runs the catalog Command with the catalog environment only (no PSK), listening on 127.0.0.1 only.
 */
/** The allocator's children that are instances: all but its watchdog. */
function instancePids(allocPid: number): number[] {
  return childrenOf(allocPid).filter(p => alive(p) && !cmdline(p).includes('__watchdog'))
}

function instanceAsCatalogSays(pid: number): void {
  assert.deepEqual(cmdline(pid), HELLO_COMMAND, 'the catalog Command, nothing else')
  const env = environ(pid)
  assert.equal(env.PHYSARUM_PSK, undefined, 'the PSK is not passed to apps')
  assert.deepEqual(
    Object.keys(env).sort(),
    ['HOME', 'HOST', 'LANG', 'PATH', 'PHYSARUM_APP', 'PHYSARUM_INSTANCE', 'PORT'].filter(
      k => k !== 'HOME' || env.HOME !== undefined
    )
  )
  const ports = listening(pid)
  assert.ok(ports.length >= 1, `pid ${pid} listens`)
  for (const a of ports) assert.match(a, /^127\.0\.0\.1:\d+$/, `instance pid ${pid} listens on ${a}`)
}

/** One allocation request with a raw JSON body; the decoded answer. */
async function rawAllocation(node: PhysarumNode, peer: PeerId, body: Uint8Array): Promise<AllocResponse | undefined> {
  const stream = await node.dialProtocol(peer, ALLOC_PROTOCOL, { signal: AbortSignal.timeout(10000) })
  stream.send(varint(body.byteLength))
  stream.send(body)
  await stream.close().catch(() => {})
  const { bytes } = await readAll(stream, 30000)
  if (bytes.byteLength === 0) return undefined
  let i = 0
  while (i < bytes.byteLength && (bytes[i] & 0x80) !== 0) i++
  const res: unknown = JSON.parse(bytes.subarray(i + 1).toString('utf8'))
  assert.ok(validateResponse(res), `an answer that matches the schema: ${bytes.toString()}`)
  return res
}

/** Requests that try to make an allocator run something else, or run it differently. */
const CRAFTED: unknown[] = [
  { v: 1, id: 'c1', app: 'hello', Image: 'busybox:latest' },
  { v: 1, id: 'c2', app: 'hello', Command: ['/bin/sh', '-c', 'touch /tmp/physarum-pwned'] },
  { v: 1, id: 'c3', app: 'hello', Env: { LD_PRELOAD: '/tmp/x.so' } },
  { v: 1, id: 'c4', app: 'hello', Binds: ['/:/host'] },
  { v: 1, id: 'c5', app: 'hello', Privileged: true },
  { v: 1, id: 'c6', app: 'hello', HostConfig: { Privileged: true, Binds: ['/:/host'], CapAdd: ['ALL'] } },
  { v: 1, id: 'c7', app: 'hello', requirements: { fresh: true, image: 'busybox' } },
  { v: 1, id: 'c8', app: 'hello', requirements: { memoryMB: 1e9, cpus: 64, pids: 1e6 } },
  { v: 1, id: 'c9', app: 'hello', requirements: { command: ['/bin/sh'] } },
  { v: 1, id: 'c10', app: 'hello', requirements: { env: { A: 'b' }, privileged: true } },
  { v: 1, id: 'c11', app: 'hello', requirements: { fresh: 'yes' } },
  { v: 1, id: 'c12', app: 'hello', requirements: [] },
  JSON.parse(
    '{"v":1,"id":"c13","app":"hello","__proto__":{"Privileged":true},"requirements":{"__proto__":{"fresh":true},"constructor":{"prototype":{"fresh":true}}}}'
  ),
  { v: 1, id: 'c14', app: '/bin/sh' },
  { v: 1, id: 'c15', app: '../hello' },
  { v: 1, id: 'c16', app: 'busybox:latest' },
  { v: 1, id: 'c17', app: { name: 'hello', Image: 'busybox' } },
  { v: 1, id: 'c18', app: ['hello'] },
  { v: 1, id: 'c19', app: 'hello\u0000busybox' },
  { v: 1, id: 'c20', app: 'HELLO' }
]

describe('security of an allocator and a proxy (CLI child processes)', { timeout: FULL ? 600000 : 120000 }, () => {
  let cl: { alloc: Started; proxy: Started }
  let allocPeer: PeerId
  let allocPid: number

  before(async () => {
    const cluster = newCluster('security', PSK)
    const alloc = await cluster.allocator({
      name: 'alloc',
      apps: { hello: HELLO },
      allocator: { DrainTimeoutS: builtinDefaults().Allocator.DrainTimeoutS, RateLimit: RATE }
    })
    cl = { alloc, proxy: await cluster.proxy({ name: 'proxy', bootstraps: [alloc.addr], apps: { hello: HELLO } }) }
    allocPeer = peerIdFromString(cl.alloc.peer)
    allocPid = cl.alloc.d.child.pid as number
  })

  after(async () => {
    await sweepClusters()
  })

  test('a peer without the PSK, or with another PSK, cannot connect; one with the PSK can', async () => {
    const members = async (): Promise<string[]> => (await membersAt(cl.alloc.admin)).map(m => m.peer)
    const hex = pskHex(PSK)
    const oneBitOff = hex.slice(0, 63) + (parseInt(hex[63], 16) ^ 1).toString(16)
    for (const [what, psk] of [
      ['no PSK', undefined],
      ['another PSK', 'some-other-cluster'],
      ['the PSK with one bit flipped', oneBitOff]
    ] as const) {
      const node = await rawPeer(psk)
      try {
        await assert.rejects(
          node.dial(multiaddr(cl.alloc.addr), { signal: AbortSignal.timeout(5000) }),
          `${what}: the dial fails`
        )
        await assert.rejects(
          node.dialProtocol(multiaddr(cl.alloc.addr), ALLOC_PROTOCOL, { signal: AbortSignal.timeout(5000) }),
          `${what}: no protocol either`
        )
        assert.equal(node.getConnections().length, 0, what)
        assert.ok(!(await members()).includes(node.peerId.toString()), `${what}: not a member`)
      } finally {
        await node.stop()
      }
    }
    // Raw bytes on the libp2p port (a port scanner, a stray HTTP client, noise without the
    // PSK's nonce) get no session; while they hang there, a peer with the PSK still joins.
    const [, , host, , port] = cl.alloc.addr.split('/')
    const junk = [
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
      '/multistream/1.0.0\n',
      Buffer.alloc(4096, 0xff).toString('latin1'),
      ''
    ].map(j => {
      const s = connect(Number(port), host)
      s.on('error', () => {})
      s.write(Buffer.from(j, 'latin1'))
      return s
    })
    const ok = await rawPeer(PSK, [cl.alloc.addr])
    try {
      assert.equal(ok.getConnections(allocPeer).length, 1)
      await waitFor(
        'the peer with the PSK seen by the allocator',
        async () => (await members()).includes(ok.peerId.toString()) || ok.getConnections(allocPeer).length > 0
      )
    } finally {
      await ok.stop()
      for (const j of junk) j.destroy()
    }
    assert.equal(cl.alloc.d.child.exitCode, null)
  })

  test('crafted allocation requests start nothing outside the catalog and pass no image, command, env, mounts or privileges', async () => {
    const node = await rawPeer(PSK, [cl.alloc.addr])
    try {
      for (const body of CRAFTED) {
        const res = await rawAllocation(node, allocPeer, utf8(JSON.stringify(body)))
        assert.ok(res !== undefined && !res.ok, `${JSON.stringify(body)} refused`)
        assert.match(res.error.code, /^(BAD_REQUEST|UNKNOWN_APP|RATE_LIMITED)$/, JSON.stringify(body))
      }
      // Many more, generated: hostile variants of a request with those fields. Only a request
      // that is plainly valid (the mutation dropped the extras) may be served.
      const extras = [
        'Image',
        'Command',
        'Env',
        'Binds',
        'Mounts',
        'Privileged',
        'HostConfig',
        'CapAdd',
        'requirements',
        'User',
        'Entrypoint',
        'Cmd'
      ]
      const r = await fuzz({
        seed: SEED,
        count: FULL ? 5000 : 300,
        concurrency: 16,
        run: async (rng: Rng, index: number) => {
          const template = {
            v: 1,
            id: `x${index}`,
            app: rng.pick(['hello', 'busybox', 'physarum-test/httpd:1', 'hello-world-server']),
            [rng.pick(extras)]: rng.pick([true, 'busybox', ['/bin/sh'], { A: 'b' }, ['/:/host']])
          }
          const body = hostileJson(rng, template, extras, 4096)
          const res = await rawAllocation(node, allocPeer, body)
          if (res === undefined) return 'reset'
          if (res.ok) {
            let plain = false
            try {
              plain = validateRequest(JSON.parse(Buffer.from(body).toString('utf8')))
            } catch {}
            if (!plain)
              throw new Error(`a crafted request was served: ${Buffer.from(body).toString('utf8').slice(0, 300)}`)
            return 'ok (a plain valid request)'
          }
          return res.error.code
        }
      })
      console.log(describeReport('crafted allocation requests', SEED, r))
      assert.deepEqual(r.failures, [])
      // Whatever ran, ran as the catalog says: its Command, its environment.
      for (const pid of instancePids(allocPid)) instanceAsCatalogSays(pid)
      assert.ok(!existsSync('/tmp/physarum-pwned'))
    } finally {
      await node.stop()
    }
  })

  test('an instance runs the catalog command with the catalog environment only (no PSK), on 127.0.0.1 only', async () => {
    const node = await rawPeer(PSK, [cl.alloc.addr])
    try {
      const inst = await requestAllocation(node, allocPeer, 'hello', { timeoutMs: 20000 })
      assert.equal(inst.state, 'ready')
      const pids = instancePids(allocPid)
      assert.ok(pids.length >= 1, 'the instance is a child process of the allocator')
      for (const pid of pids) instanceAsCatalogSays(pid)
      // Its other child, the watchdog (src/allocator/watchdog.ts), gets no secret either.
      const watchdogs = childrenOf(allocPid).filter(p => alive(p) && cmdline(p).includes('__watchdog'))
      assert.equal(watchdogs.length, 1, 'the allocator runs one watchdog')
      assert.equal(environ(watchdogs[0]).PHYSARUM_PSK, undefined, 'the PSK is not passed to the watchdog')
      // The allocator itself: libp2p where told (127.0.0.1 here), admin on loopback.
      for (const a of listening(allocPid)) assert.match(a, /^127\.0\.0\.1:\d+$/, `allocator listens on ${a}`)
    } finally {
      await node.stop()
    }
  })

  test('the per-peer allocation rate limit holds against a flooding peer; another peer is still served', async () => {
    const flooder = await rawPeer(PSK, [cl.alloc.addr])
    const other = await rawPeer(PSK, [cl.alloc.addr])
    try {
      const seconds = FULL ? 10 : 2
      const t0 = Date.now()
      const results: string[] = []
      const flood = async (): Promise<void> => {
        while (Date.now() - t0 < seconds * 1000) {
          try {
            await requestAllocation(flooder, allocPeer, 'hello', { timeoutMs: 20000 })
            results.push('ok')
          } catch (err) {
            results.push((err as AllocationError).code)
          }
        }
      }
      const served: string[] = []
      const polite = async (): Promise<void> => {
        // One request a second from another peer, while the flood goes on.
        while (Date.now() - t0 < seconds * 1000) {
          try {
            await requestAllocation(other, allocPeer, 'hello', { timeoutMs: 20000 })
            served.push('ok')
          } catch (err) {
            served.push((err as AllocationError).code)
          }
          await new Promise(resolve => setTimeout(resolve, 1000))
        }
      }
      await Promise.all([...Array.from({ length: 16 }, flood), polite()])
      const elapsed = (Date.now() - t0) / 1000
      const ok = results.filter(r => r === 'ok').length
      const limited = results.filter(r => r === 'RATE_LIMITED').length
      const line = `# rate limit (${RATE.PerSecond}/s, burst ${RATE.Burst}): a flood of ${results.length} requests in ${elapsed.toFixed(1)} s → ${ok} served, ${limited} RATE_LIMITED; the other peer: ${served.join(', ')}`
      console.log(line)
      assert.ok(ok <= RATE.Burst + Math.ceil(RATE.PerSecond * elapsed) + 1, line)
      assert.ok(ok >= RATE.Burst, `the burst is served: ${line}`)
      assert.equal(ok + limited, results.length, `only ok or RATE_LIMITED: ${line}`)
      assert.ok(
        served.length >= 1 && served.every(s => s === 'ok'),
        `the other peer is not limited by the flood: ${line}`
      )
    } finally {
      await flooder.stop()
      await other.stop()
    }
  })

  test('forwarding reaches only the catalog apps hosted here, whatever the header frame names', async () => {
    const node = await rawPeer(PSK, [cl.alloc.addr])
    try {
      for (const frame of [
        { v: 1, app: 'hello', host: '127.0.0.1', port: 22 },
        { v: 1, app: 'hello', instance: '../../etc' },
        { v: 1, app: 'admin' },
        { v: 1, app: 'hello', address: '127.0.0.1:' + cl.alloc.admin.split(':')[1] }
      ]) {
        const hdr = utf8(JSON.stringify(frame))
        const s = await node.dialProtocol(allocPeer, HTTP_PROTOCOL, { signal: AbortSignal.timeout(10000) })
        s.send(varint(hdr.byteLength))
        s.send(hdr)
        s.send(utf8('GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
        const { bytes } = await readAll(s, 15000)
        const text = bytes.toString()
        // Either an instance of hello answers (its own 404 for /v1/health), or a clear refusal: never the admin API or
        // another port.
        assert.match(text, /^HTTP\/1\.1 (404|503)/, `${JSON.stringify(frame)}: ${text.slice(0, 200)}`)
        assert.doesNotMatch(text, /"status":\s*"ok"|uptimeS|SSH/, JSON.stringify(frame))
      }
    } finally {
      await node.stop()
    }
  })
})

describe('key and PSK files', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'physarum-secrets-'))
  })
  after(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  test('a new identity key file is 0600 in a 0700 directory; the same key is read back', async () => {
    const file = join(dir, 'new', 'sub', 'node.key')
    const a = await loadOrCreateKey(file)
    assert.equal(a.created, true)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(join(dir, 'new', 'sub')).mode & 0o777, 0o700)
    const b = await loadOrCreateKey(file)
    assert.equal(b.created, false)
    assert.ok(a.key.equals(b.key))
  })

  test('key and PSK files readable by group or others are refused with the chmod to run; 0600 and 0400 are accepted', async () => {
    const key = join(dir, 'k.key')
    await loadOrCreateKey(key)
    const psk = join(dir, 'swarm.psk')
    writeFileSync(psk, 'a'.repeat(64), { mode: 0o600 })
    for (const mode of [0o640, 0o604, 0o644, 0o660, 0o666, 0o620, 0o602, 0o610, 0o601]) {
      chmodSync(key, mode)
      chmodSync(psk, mode)
      await assert.rejects(
        loadOrCreateKey(key),
        (e: unknown) => e instanceof ConfigError && e.message.includes(`chmod 600 ${key}`),
        `key mode ${mode.toString(8)}`
      )
      assert.throws(
        () => resolvePsk({ PskFile: psk }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(`mode ${mode.toString(8)}`),
        `PSK mode ${mode.toString(8)}`
      )
    }
    for (const mode of [0o600, 0o400]) {
      chmodSync(key, mode)
      chmodSync(psk, mode)
      await loadOrCreateKey(key)
      assert.equal(resolvePsk({ PskFile: psk })?.key.byteLength, 95)
    }
  })

  test('through the CLI: a proxy with an exposed PSK file, and an allocator with an exposed key file, exit 2 naming the file', async () => {
    const conf = join(dir, 'conf.json')
    writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'] }))
    const psk = join(dir, 'exposed.psk')
    writeFileSync(psk, 'b'.repeat(64), { mode: 0o644 })
    chmodSync(psk, 0o644)
    const r1 = await runCli(
      ['proxy', '--port', '0', '--configfile', conf, '--psk-file', psk, '--ephemeral', '--admin', '127.0.0.1:0'],
      { cwd: dir }
    )
    assert.equal(r1.code, 2, r1.stderr)
    assert.match(r1.stderr, /PSK file .*exposed\.psk is readable by group or others \(mode 644\)/)
    const key = join(dir, 'exposed.key')
    await loadOrCreateKey(key)
    chmodSync(key, 0o604)
    const r2 = await runCli(['allocator', '--configfile', conf, '--keyfile', key, '--admin', '127.0.0.1:0'], {
      cwd: dir,
      env: { PHYSARUM_PSK: PSK }
    })
    assert.equal(r2.code, 2, r2.stderr)
    assert.match(r2.stderr, /key file .*exposed\.key is readable by group or others \(mode 604\)/)
  })
})

test(
  'admin APIs listen on loopback by default: allocator 127.0.0.1:7701, proxy 127.0.0.1:7702 (real CLI)',
  { timeout: 90000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physarum-admin-'))
    mkdirSync(join(dir, 'home'))
    const conf = join(dir, 'conf.json')
    writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'] }))
    const env = { PHYSARUM_PSK: PSK, HOME: join(dir, 'home') }
    // The default ports are fixed: when another test of this machine holds one, wait for it.
    const start = async (args: string[], port: number): Promise<Daemon> => {
      for (let attempt = 0; ; attempt++) {
        const d = spawnCli([...args, '--configfile', conf, '--ephemeral'], { env, cwd: dir })
        try {
          await d.waitFor(new RegExp(`admin=127\\.0\\.0\\.1:${port}\\b`), 20000)
          return d
        } catch (err) {
          d.child.kill('SIGKILL')
          await d.exited
          if (!/EADDRINUSE/.test(d.stderr()) || attempt >= 10) throw err
          await new Promise(resolve => setTimeout(resolve, 3000))
        }
      }
    }
    try {
      const alloc = await start(['allocator'], 7701)
      const addr = (await alloc.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+)/))[1]
      const proxy = await start(['proxy', '--port', '0', '--bootstrap', addr], 7702)
      await proxy.waitFor(/proxy listening on http:\/\/127\.0\.0\.1:\d+\//)
      for (const [d, port] of [
        [alloc, 7701],
        [proxy, 7702]
      ] as const) {
        const addrs = listening(d.child.pid as number)
        assert.ok(
          addrs.includes(`127.0.0.1:${port}`),
          `${addrs.join(', ')} includes the admin API on 127.0.0.1:${port}`
        )
        for (const a of addrs)
          assert.match(a, /^127\.0\.0\.1:\d+$/, `every listening socket on loopback: ${addrs.join(', ')}`)
        const health = (await (await fetch(`http://127.0.0.1:${port}/v1/health`)).json()) as { status: string }
        assert.equal(health.status, 'ok')
      }
    } finally {
      await killAll()
      rmSync(dir, { recursive: true, force: true })
    }
  }
)

describe(
  'Docker: containers get the catalog limits and nothing a request asks for',
  { skip: engine ? false : 'no Docker engine answers', timeout: 120000 },
  () => {
    let alloc: AllocatorDaemon
    let client: Agent
    const DPSK = 'security-docker-key'

    before(async () => {
      buildTestImage()
      alloc = await startAllocator({
        Psk: DPSK,
        Apps: {
          web: {
            Image: TEST_IMAGE,
            Port: 8080,
            Health: { Path: '/healthz' },
            IdleTimeoutS: 60,
            Env: { GREETING: 'hi' },
            Resources: { MemoryMB: 48, Cpus: 0.25, Pids: 32 }
          }
        },
        Allocator: {
          Runtime: 'docker',
          MaxInstances: 4,
          MemoryMB: 1024,
          DrainTimeoutS: 2,
          RateLimit: { PerSecond: 100, Burst: 100 }
        }
      })
      client = await startAgent({ role: 'proxy', config: { Psk: DPSK, Bootstraps: [addrOf(alloc.agent)] } })
      await waitFor('connected', () => client.membership.table.get(alloc.agent.peer) !== undefined)
    })

    after(async () => {
      await client?.stop()
      await stopAndSweep(alloc)
    })

    test('crafted requests create no container; the catalog container has its memory, CPU and pids limits, no privileges or mounts, a loopback port', async () => {
      const peer = alloc.agent.node.peerId
      for (const body of CRAFTED.map(
        b => JSON.parse(JSON.stringify(b).replace('"app":"hello"', '"app":"web"')) as unknown
      )) {
        const res = await rawAllocation(client.node, peer, utf8(JSON.stringify(body)))
        assert.ok(res !== undefined && !res.ok, `${JSON.stringify(body)} refused`)
      }
      assert.deepEqual(labelled(alloc.agent.peer), [], 'no container for any crafted request')
      const inst = await requestAllocation(client.node, peer, 'web', { timeoutMs: 30000 })
      const ids = labelled(alloc.agent.peer)
      assert.equal(ids.length, 1)
      const info = inspect(ids[0]) as ReturnType<typeof inspect> & {
        Config: { Image: string; Env: string[]; Cmd: string[] | null; User: string }
        HostConfig: { Binds: string[] | null; CapAdd: string[] | null; NetworkMode: string; MemorySwap: number }
      }
      const line = `# container ${ids[0].slice(0, 12)} of web (${inst.id}): Memory ${info.HostConfig.Memory}, NanoCpus ${info.HostConfig.NanoCpus}, PidsLimit ${info.HostConfig.PidsLimit}, Privileged ${String(info.HostConfig.Privileged)}, port ${JSON.stringify(info.NetworkSettings.Ports['8080/tcp'])}`
      console.log(line)
      assert.equal(info.Config.Image, TEST_IMAGE)
      assert.equal(info.HostConfig.Memory, 48 * 1024 * 1024)
      assert.equal(info.HostConfig.MemorySwap, 48 * 1024 * 1024, 'no swap beyond the memory limit')
      assert.equal(info.HostConfig.NanoCpus, 0.25e9)
      assert.equal(info.HostConfig.PidsLimit, 32)
      assert.equal(info.HostConfig.Privileged, false)
      assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges'])
      assert.ok(info.HostConfig.Binds === null || info.HostConfig.Binds.length === 0, 'no binds')
      assert.ok(info.HostConfig.CapAdd === null || info.HostConfig.CapAdd.length === 0, 'no added capabilities')
      assert.deepEqual(info.Mounts, [])
      const env = info.Config.Env.filter(e => !e.startsWith('PATH='))
      assert.deepEqual(
        env.map(e => e.split('=')[0]).sort(),
        ['GREETING', 'PHYSARUM_APP', 'PHYSARUM_INSTANCE', 'PORT'],
        'the catalog Env and ours, nothing else (no PSK)'
      )
      const bindings = info.NetworkSettings.Ports['8080/tcp'] ?? []
      assert.ok(bindings.length >= 1)
      for (const b of bindings) assert.equal(b.HostIp, '127.0.0.1', 'published on loopback only')
    })
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
