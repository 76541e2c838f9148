// End to end with the packaged executable only (dist/physarum, from `npm run package`;
// `npm test` builds it first), as a user runs it: a PSK from `config init`, three
// allocators and two proxies on 127.0.0.1, a cold start, warm requests, `members --json`,
// an idle cull, and SIGTERM to everything leaving no process and no container behind.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ROOT, spawnCli, runCli, killAll, exitWithin, type Daemon } from '../helpers/cli.js'
import { waitFor } from '../helpers/cluster.js'
import { members, instances } from '../helpers/daemons.js'
import { dockerReady, buildTestImage, labelled, removeLabelled, TEST_IMAGE } from '../helpers/docker.js'
import type { MemberView } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const EXE = resolve(ROOT, 'dist/physarum')
let dir: string

interface Node {
  d: Daemon
  addr: string
  peer: string
  admin: string
  http?: string
}

async function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Node> {
  const d = spawnCli(args, { bin: EXE, cwd: dir, env })
  const [, addr, peer] = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/, 20000)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  const http =
    args[0] === 'proxy' ? (await d.waitFor(/proxy listening on (http:\/\/127\.0\.0\.1:\d+)\//))[1] : undefined
  return { d, addr, peer, admin, http }
}

/** The cold-start time in a response's server-timing header (0 when absent). */
function coldMs(r: Response): number {
  return Number(/cold;dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')?.[1] ?? 0)
}

/** PIDs of running processes whose command line is `EXE hello-world-server` (the demo app's instances). */
function helloProcesses(): number[] {
  const found: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')
      if (argv[0] === EXE && argv[1] === 'hello-world-server') found.push(Number(p))
    } catch {}
  }
  return found
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const n of nodes) n.d.child.kill('SIGTERM')
  const results = await Promise.all(nodes.map(async n => await exitWithin(n.d, 20000)))
  assert.deepEqual(
    results,
    nodes.map(() => ({ code: 0, signal: null })),
    'every process exits 0 after SIGTERM'
  )
}

before(() => {
  assert.ok(existsSync(EXE), `${EXE} is missing: run \`npm run package\` (npm test does it first)`)
  dir = mkdtempSync(join(tmpdir(), 'physarum-e2e-'))
})
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

test('every subcommand answers --help, and a bad flag is one line and exit 2', async () => {
  const version = await runCli(['--version'], { bin: EXE, cwd: dir })
  assert.match(version.stdout, /^physarum\/\d+\.\d+\.\d+ linux-x64 node-v20/)
  for (const cmd of [
    ['allocator'],
    ['proxy'],
    ['members'],
    ['config', 'show'],
    ['config', 'validate'],
    ['config', 'init']
  ]) {
    const r = await runCli([...cmd, '--help'], { bin: EXE, cwd: dir })
    assert.equal(r.code, 0, `${cmd.join(' ')} --help: ${r.stderr}`)
    assert.match(r.stdout, new RegExp(`USAGE\\s+\\$ physarum ${cmd.join(' ')}`))
    assert.equal(r.stderr, '')
  }
  const bad = await runCli(['proxy', '--port', 'x'], { bin: EXE, cwd: dir })
  assert.equal(bad.code, 2)
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
})

describe('the packaged executable: 3 allocators, 2 proxies, process runtime', () => {
  const nodes: Node[] = []
  let conf: string

  before(async () => {
    const init = await runCli(['config', 'init', '--output', join(dir, 'cluster.json')], { bin: EXE, cwd: dir })
    assert.equal(init.code, 0, init.stderr)
    assert.equal(statSync(join(dir, 'cluster.json')).mode & 0o777, 0o600)
    const cfg = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'))
    assert.match(cfg.Psk, /^[0-9a-f]{64}$/)
    cfg.Listen = ['/ip4/127.0.0.1/tcp/0']
    cfg.Allocator.Runtime = 'process'
    cfg.Apps['hello-world-server'].IdleTimeoutS = 3
    conf = join(dir, 'conf.json')
    writeFileSync(conf, JSON.stringify(cfg), { mode: 0o600 })
    const alloc = (i: number, more: string[] = []): string[] => [
      'allocator',
      '--configfile',
      conf,
      '--keyfile',
      join(dir, `a${i}/allocator.key`),
      '--admin',
      '127.0.0.1:0',
      ...more
    ]
    const a1 = await start(alloc(1))
    const join1 = ['--bootstrap', a1.addr]
    nodes.push(
      a1,
      ...(await Promise.all([
        start(alloc(2, join1)),
        start(alloc(3, join1)),
        start(['proxy', '--configfile', conf, '--ephemeral', '--port', '0', '--admin', '127.0.0.1:0', ...join1]),
        start(['proxy', '--configfile', conf, '--ephemeral', '--port', '0', '--admin', '127.0.0.1:0', ...join1])
      ]))
    )
  })
  after(async () => {
    await killAll()
  })

  test('members --json lists the five members, alive, with their roles', async () => {
    const rows = await waitFor(
      'five alive members',
      async () => {
        const r = await runCli(['members', '--agent', nodes[3].admin, '--json'], { bin: EXE, cwd: dir })
        assert.equal(r.code, 0, r.stderr)
        const m = JSON.parse(r.stdout) as MemberView[]
        return m.length === 5 && m.every(x => x.status === 'alive') ? m : undefined
      },
      20000,
      250
    )
    assert.deepEqual(rows.map(r => r.peer).sort(), nodes.map(n => n.peer).sort())
    assert.equal(rows.filter(r => r.roles.includes('allocator')).length, 3)
    assert.equal(rows.filter(r => r.roles.includes('proxy')).length, 2)
  })

  let instance = ''
  test('a cold start: the first request starts an instance and answers through the whole path', async () => {
    // Each proxy must know the allocators' catalogs before it can allocate.
    await waitFor(
      'proxies see three allocators',
      async () => {
        for (const p of nodes.slice(3)) {
          const m = await members(p.admin)
          if (m.filter(x => x.roles.includes('allocator') && x.status === 'alive').length < 3) return false
        }
        return true
      },
      20000,
      200
    )
    const r = await fetch(`${nodes[3].http as string}/hello-world-server/hello`)
    assert.equal(r.status, 200)
    assert.equal(await r.text(), 'hello world\n')
    assert.ok(coldMs(r) > 0, `a cold start is timed: ${r.headers.get('server-timing') ?? ''}`)
    instance = r.headers.get('x-physarum-instance') ?? ''
    assert.match(instance, /@12D3KooW/)
    assert.equal(helloProcesses().length, 1, 'one instance process, run by the executable itself')
  })

  test('warm requests through both proxies use that instance', async () => {
    for (const p of [nodes[3], nodes[4]]) {
      for (let i = 0; i < 10; i++) {
        const r = await waitFor(
          'a 200',
          async () => {
            const res = await fetch(`${p.http as string}/hello-world-server/hello`)
            return res.status === 200 ? res : undefined
          },
          10000,
          100
        )
        assert.equal(await r.text(), 'hello world\n')
        assert.equal(r.headers.get('x-physarum-instance'), instance)
        if (p === nodes[3]) assert.equal(coldMs(r), 0, 'warm: no cold start')
      }
    }
    const counts = await Promise.all(nodes.slice(0, 3).map(async a => (await instances(a.admin)).length))
    assert.equal(
      counts.reduce((x, y) => x + y, 0),
      1,
      `instances per allocator: ${counts.join(', ')}`
    )
  })

  test('an idle instance is culled after IdleTimeoutS', async () => {
    await waitFor(
      'no instance left',
      async () => {
        const counts = await Promise.all(nodes.slice(0, 3).map(async a => (await instances(a.admin)).length))
        return counts.every(c => c === 0) && helloProcesses().length === 0
      },
      30000,
      250
    )
  })

  test('SIGTERM to every process leaves no process behind', async () => {
    const r = await fetch(`${nodes[4].http as string}/hello-world-server/hello`)
    assert.equal(r.status, 200, 'a new instance for the shutdown check')
    assert.equal(helloProcesses().length, 1)
    await stopAll(nodes)
    assert.deepEqual(helloProcesses(), [])
  })
})

const engine = dockerReady()
describe(
  'the packaged executable with the Docker runtime',
  { skip: engine ? false : 'no Docker engine answers' },
  () => {
    const nodes: Node[] = []
    before(async () => {
      buildTestImage()
      const conf = join(dir, 'docker.json')
      writeFileSync(
        conf,
        JSON.stringify({
          Listen: ['/ip4/127.0.0.1/tcp/0'],
          Allocator: { Runtime: 'docker' },
          Apps: {
            web: {
              Image: TEST_IMAGE,
              Port: 8080,
              Health: { Path: '/healthz' },
              Resources: { MemoryMB: 64, Cpus: 0.25 },
              IdleTimeoutS: 300
            }
          }
        })
      )
      const env = { PHYSARUM_PSK: 'e2e docker passphrase' }
      const a = await start(['allocator', '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0'], env)
      nodes.push(
        a,
        await start(
          [
            'proxy',
            '--configfile',
            conf,
            '--ephemeral',
            '--port',
            '0',
            '--admin',
            '127.0.0.1:0',
            '--bootstrap',
            a.addr
          ],
          env
        )
      )
    })
    after(async () => {
      await killAll()
      for (const n of nodes) removeLabelled(n.peer)
    })

    test('a request starts a container, and SIGTERM removes it', async () => {
      const r = await waitFor(
        'a 200 from the container',
        async () => {
          const res = await fetch(`${nodes[1].http as string}/web/`)
          return res.status === 200 ? res : undefined
        },
        30000,
        250
      )
      assert.equal(await r.text(), 'hello from busybox\n')
      assert.equal(labelled(nodes[0].peer).length, 1)
      await stopAll(nodes)
      assert.deepEqual(labelled(nodes[0].peer), [])
    })
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
