// Real child processes of bin/physarum: three daemons joined through the multiaddr
// printed by the first, `physarum members` against an agent and by joining, failure of
// a frozen (SIGSTOP) process, leave on SIGTERM, and the persistent identity file.
// The daemons of the main suite also carry a preload that reports every string collation.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { spawnCli, runCli, killAll, type Daemon } from '../helpers/cli.js'
import { waitFor } from '../helpers/cluster.js'
import { statusAt } from '../helpers/daemons.js'
import type { MemberView } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PSK = '0123456789abcdef'.repeat(4)
let dir: string
let conf: string
let trap: string

/**
 * A preload for the daemons: it reports each String#localeCompare and Intl.Collator call on
 * stderr. The first of them in a process loads ICU's collation data, ~2 MB of an idle
 * daemon's resident memory, and nothing a daemon sorts needs a locale's order.
 */
const COLLATION_TRAP = `const { writeSync } = require('node:fs')
const report = (what) => writeSync(2, '[collation] ' + what + ' ' + new Error().stack.split('\\n').slice(3, 5).join(' ') + '\\n')
const localeCompare = String.prototype.localeCompare
String.prototype.localeCompare = function (...args) { report('localeCompare'); return localeCompare.apply(this, args) }
Intl.Collator = new Proxy(Intl.Collator, {
  construct (target, args) { report('Intl.Collator'); return Reflect.construct(target, args) },
  apply (target, self, args) { report('Intl.Collator'); return Reflect.apply(target, self, args) }
})
writeSync(2, 'collation trap set\\n')
`

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-daemons-'))
  conf = join(dir, 'conf.json')
  writeFileSync(conf, JSON.stringify({ Listen: ['/ip4/127.0.0.1/tcp/0'] }))
  trap = join(dir, 'collation-trap.cjs')
  writeFileSync(trap, COLLATION_TRAP)
})
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

interface Started {
  d: Daemon
  addr: string
  admin: string
  peer: string
}

async function daemon(role: 'allocator' | 'proxy', extra: string[] = []): Promise<Started> {
  const d = spawnCli([role, '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0', ...extra], {
    env: { PHYSARUM_PSK: PSK, NODE_OPTIONS: `--require ${trap}` },
    cwd: dir
  })
  const addr = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/)
  const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  return { d, addr: addr[1], peer: addr[2], admin }
}

async function members(admin: string, extra: string[] = []): Promise<MemberView[]> {
  const r = await runCli(['members', '--agent', admin, '--json', ...extra], { cwd: dir })
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as MemberView[]
}

const statusIn = (rows: MemberView[], peer: string): string | undefined => rows.find(r => r.peer === peer)?.status

describe('daemons as child processes', () => {
  let a: Started, b: Started, c: Started

  before(async () => {
    a = await daemon('allocator')
    ;[b, c] = await Promise.all([
      daemon('proxy', ['--bootstrap', a.addr, '--port', '0']),
      daemon('allocator', ['--bootstrap', a.addr])
    ])
  })

  test('the first daemon prints a full multiaddr and warns about nothing when a PSK is set', () => {
    assert.match(a.addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/)
    assert.match(a.d.stderr(), /PSK fingerprint [0-9a-f]{12}/)
    assert.doesNotMatch(a.d.stderr(), /OPEN network/)
  })

  test('members --json against one agent lists all three alive, with RTTs', async () => {
    const rows = await waitFor(
      'three alive members',
      async () => {
        const r = await members(b.admin)
        return r.filter(m => m.status === 'alive').length === 3 && r.filter(m => !m.self).every(m => m.rttMs !== null)
          ? r
          : undefined
      },
      15000,
      200
    )
    assert.deepEqual(rows.map(r => r.peer).sort(), [a.peer, b.peer, c.peer].sort())
    assert.deepEqual(rows.find(r => r.peer === b.peer)?.roles, ['proxy'])
    assert.deepEqual(rows.find(r => r.peer === a.peer)?.catalog, ['hello-world-server'])
    for (const r of rows.filter(m => !m.self)) assert.ok((r.rttMs ?? 0) > 0, `rtt of ${r.peer} above zero`)
  })

  test('the table form, and filters', async () => {
    const r = await runCli(['members', '--agent', a.admin, '--role', 'allocator'], { cwd: dir })
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trimEnd().split('\n')
    assert.match(lines[0], /^PEER\s+ADDRESS\s+STATUS\s+ROLES\s+RTT\(ms\)\s+APPS\s+LOAD/)
    assert.equal(lines.length, 3, r.stdout)
    assert.ok(
      lines.slice(1).every(l => / alive\s+allocator\s+\d+\.\d\d\s+hello-world-server/.test(l)),
      r.stdout
    )
    const none = await members(a.admin, ['--status', 'failed|left'])
    assert.equal(none.length, 0)
    const detailed = await runCli(['members', '--agent', a.admin, '--detailed'], { cwd: dir })
    assert.ok(detailed.stdout.includes(a.addr), 'every multiaddr in --detailed')
  })

  test('the admin API: /v1/self, /v1/health, /metrics, and a clear 404', async () => {
    const self = (await (await fetch(`http://${a.admin}/v1/self`)).json()) as MemberView
    assert.equal(self.peer, a.peer)
    assert.equal(self.self, true)
    const health = (await (await fetch(`http://${a.admin}/v1/health`)).json()) as { status: string; role: string }
    assert.deepEqual([health.status, health.role], ['ok', 'allocator'])
    const metrics = await (await fetch(`http://${a.admin}/metrics`)).text()
    assert.match(metrics, /physarum_members\{state="alive"\} 3/)
    assert.match(metrics, /physarum_announcements_total\{result="accepted"\}/)
    assert.match(metrics, /physarum_rtt_seconds_bucket/)
    assert.match(metrics, /physarum_process_resident_memory_bytes/)
    const nf = await fetch(`http://${a.admin}/v1/nope`)
    assert.equal(nf.status, 404)
  })

  test('members --app filters by catalog', async () => {
    const withApp = await members(a.admin, ['--app', 'hello-world-server'])
    assert.deepEqual(withApp.map(r => r.peer).sort(), [a.peer, c.peer].sort())
    assert.equal((await members(a.admin, ['--app', 'no-such-app'])).length, 0)
  })

  test('rtt estimates from coordinates: to the local agent, between two members, --json, and one-line refusals', async () => {
    const rtt = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      await runCli(['rtt', '--agent', a.admin, ...args], { cwd: dir })
    // Coordinates come from the failure detector's probes: wait until both have one.
    const json = await waitFor(
      'a coordinate estimate between b and c',
      async () => {
        const r = await rtt('--json', b.peer, c.peer)
        return r.code === 0 ? (JSON.parse(r.stdout) as { from: string; to: string; estimatedRttMs: number }) : undefined
      },
      15000,
      300
    )
    assert.deepEqual([json.from, json.to], [c.peer, b.peer])
    assert.ok(json.estimatedRttMs > 0 && json.estimatedRttMs < 1000, `estimate ${json.estimatedRttMs} ms on loopback`)
    // One PEER: the other end is the local agent (a), named by the end of its ID as members prints it.
    const one = await rtt(c.peer.slice(-6))
    assert.equal(one.code, 0, one.stderr)
    assert.match(one.stdout, /^Estimated \S+ <-> \S+ rtt: \d+\.\d{3} ms \(using network coordinates\)\n$/)
    assert.ok(one.stdout.includes(a.peer.slice(-6)) && one.stdout.includes(c.peer.slice(-6)), one.stdout)
    for (const [args, re] of [
      [['12D3KooWnobodyHasThisId'], /^no member "12D3KooWnobodyHasThisId"/],
      [['12D3KooW'], /^"12D3KooW" names 3 members .*give more of the peer ID/],
      [[a.peer], /is the local agent itself: name two members/],
      [[b.peer, b.peer], /is named twice: name two members/]
    ] as const) {
      const r = await rtt(...args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr)
      assert.match(r.stderr.replace(/^physarum: /, ''), re)
    }
  })

  test('members joins through the bootstraps when no agent answers', async () => {
    const r = await runCli(['members', '--agent', '127.0.0.1:1', '--bootstrap', a.addr, '--json', '--wait', '3'], {
      cwd: dir,
      env: { PHYSARUM_PSK: PSK }
    })
    assert.equal(r.code, 0, r.stderr)
    const rows = JSON.parse(r.stdout) as MemberView[]
    assert.deepEqual(rows.map(x => x.peer).sort(), [a.peer, b.peer, c.peer].sort())
    assert.ok(
      rows.every(x => x.status === 'alive' && x.rttMs !== null && x.rttMs > 0),
      JSON.stringify(rows.map(x => [x.roles, x.status, x.rttMs]))
    )
    // The observer left again: it does not linger in anyone's table.
    await waitFor('observer forgotten', async () => (await members(a.admin)).length === 3, 5000, 200)
  })

  test('no agent and no bootstraps: one line saying how to point it at a cluster', async () => {
    const r = await runCli(['members', '--agent', '127.0.0.1:1', '--configfile', conf], { cwd: dir })
    assert.equal(r.code, 2)
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /no agent answers on 127\.0\.0\.1:1.*--bootstrap/)
  })

  test('SIGSTOP → failed on the others; SIGCONT → alive again', async () => {
    c.d.child.kill('SIGSTOP')
    const t0 = Date.now()
    await waitFor('frozen daemon failed', async () => (await statusAt(a.admin, c.peer)) === 'failed', 10000, 50)
    const took = Date.now() - t0
    await waitFor('seen failed by the proxy too', async () => (await statusAt(b.admin, c.peer)) === 'failed', 5000, 50)
    // And so says the CLI.
    assert.equal(statusIn(await members(a.admin), c.peer), 'failed')
    c.d.child.kill('SIGCONT')
    await waitFor('resumed daemon alive', async () => (await statusAt(a.admin, c.peer)) === 'alive', 15000, 100)
    // Detection takes ~1.5–3 s (polled through the admin API, statusAt: a CLI process per poll took
    // 1–2 s each on a busy VM and once made this 9.5 s).
    assert.ok(took < 8000, `frozen daemon seen failed after ${took} ms`)
  })

  test('SIGTERM → exit 0 and left on the others', async () => {
    b.d.child.kill('SIGTERM')
    const { code } = await b.d.exited
    assert.equal(code, 0)
    assert.match(b.d.stderr(), /SIGTERM: shutting down/)
    await waitFor('left', async () => statusIn(await members(a.admin), b.peer) === 'left', 5000, 100)
    await waitFor('left on the other', async () => statusIn(await members(c.admin), b.peer) === 'left', 5000, 100)
  })

  test("no daemon collates strings in its whole life (ICU's collation data stays out of memory)", () => {
    // Start, join, probes, announcements, every members query above, a failure, a leave.
    for (const [name, s] of [
      ['a', a],
      ['b', b],
      ['c', c]
    ] as const) {
      assert.match(s.d.stderr(), /collation trap set/, `${name} ran with the preload`)
      assert.doesNotMatch(s.d.stderr(), /\[collation\]/, `daemon ${name}`)
    }
  })
})

test('--log-format json writes one JSON object per line', async () => {
  const d = spawnCli(
    ['proxy', '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0', '--port', '0', '--log-format', 'json'],
    { cwd: dir }
  )
  await d.waitFor(/proxy listening/)
  d.child.kill('SIGTERM')
  assert.equal((await d.exited).code, 0)
  const lines = d.stderr().trim().split('\n')
  assert.ok(lines.length >= 3)
  for (const l of lines) {
    const j = JSON.parse(l) as { level: string; message: string; timestamp: string }
    assert.ok(typeof j.level === 'string' && typeof j.message === 'string' && typeof j.timestamp === 'string', l)
  }
})

test('proxy arguments: the positional form, and --app without an address or catalog Port', async () => {
  const d = spawnCli(['proxy', '0', '--configfile', conf, '--ephemeral', '--admin', '127.0.0.1:0'], { cwd: dir })
  await d.waitFor(/proxy listening on http:\/\/127\.0\.0\.1:\d+/)
  d.child.kill('SIGTERM')
  assert.equal((await d.exited).code, 0)
  const r = await runCli(['proxy', '--port', '0', '--app', 'mystery', '--configfile', conf, '--ephemeral'], {
    cwd: dir
  })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--app mystery needs --address HOST:PORT/)
  const bad = await runCli(
    ['proxy', '--port', '0', '--app', 'x', '--address', 'nowhere', '--configfile', conf, '--ephemeral'],
    { cwd: dir }
  )
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /is not HOST:PORT/)
})

test('a Listen address this host cannot take: one line naming it and the cause, exit 1', async () => {
  const held = createServer().listen(0, '127.0.0.1')
  await once(held, 'listening')
  const port = (held.address() as AddressInfo).port
  try {
    for (const command of [['allocator'], ['proxy', '--port', '0']]) {
      const r = await runCli(
        [
          ...command,
          '--configfile',
          conf,
          '--ephemeral',
          '--listen',
          `/ip4/127.0.0.1/tcp/${port}`,
          '--admin',
          '127.0.0.1:0'
        ],
        { cwd: dir }
      )
      assert.equal(r.code, 1, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(
          `^physarum: cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${port}: address already in use \\(EADDRINUSE\\) \\(change Listen in the config, or --listen\\)$`,
          'm'
        )
      )
      assert.doesNotMatch(r.stderr, /faultTolerance|\n\s+at /)
    }
  } finally {
    held.close()
  }
})

test('the identity key file is created 0600 and gives the same peer ID after a restart', async () => {
  const keyfile = join(dir, 'keys', 'allocator.key')
  const first = spawnCli(['allocator', '--configfile', conf, '--keyfile', keyfile, '--admin', '127.0.0.1:0'], {
    cwd: dir
  })
  const p1 = (await first.waitFor(/listening on \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+)/))[1]
  assert.match(first.stderr(), /OPEN network/, 'without a PSK the node warns that it is open')
  first.child.kill('SIGTERM')
  assert.equal((await first.exited).code, 0)
  assert.equal(statSync(keyfile).mode & 0o777, 0o600)
  const second = spawnCli(['allocator', '--configfile', conf, '--keyfile', keyfile, '--admin', '127.0.0.1:0'], {
    cwd: dir
  })
  const p2 = (await second.waitFor(/listening on \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+)/))[1]
  assert.equal(p2, p1)
  second.child.kill('SIGINT')
  assert.equal((await second.exited).code, 0)
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
