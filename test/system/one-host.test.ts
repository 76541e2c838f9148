// Several daemons on one host with default flags (issue: the second proxy used to exit with
// "admin API cannot listen on 127.0.0.1:7702: EADDRINUSE"): an allocator, two server-mode
// proxies and a client proxy all run, `physarum members` finds them without --agent (the
// per-user runtime directory), and requests reach both user-run apps. Real CLI processes;
// only the client proxy's port is chosen (a client needs to know where to send).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { spawnCli, runCli, killAll, alive, type Daemon } from '../helpers/cli.js'
import { HELLO_COMMAND, waitFor } from '../helpers/cluster.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import type { MemberView } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const apps: ChildProcess[] = []
const dir = mkdtempSync(join(tmpdir(), 'physarum-one-host-'))
after(async () => {
  for (const a of apps) a.kill('SIGKILL')
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

test(
  'an allocator, two server-mode proxies and a client proxy share a host with default flags',
  { timeout: 90000 },
  async () => {
    const [alphaPort, betaPort, clientPort] = [await reservePort(), await reservePort(), await reservePort()]
    for (const [name, port] of [
      ['alpha', alphaPort],
      ['beta', betaPort]
    ] as const) {
      const app = spawn(HELLO_COMMAND[0], [HELLO_COMMAND[1]], {
        env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', PHYSARUM_INSTANCE: name },
        stdio: 'ignore'
      })
      apps.push(app)
    }
    const conf = join(dir, 'conf.json')
    // Loopback only (test hygiene); the catalog gives each user-run app its Port, so that
    // `--app NAME` needs no --address.
    writeFileSync(
      conf,
      JSON.stringify({
        Psk: 'one-host-test-key',
        Listen: ['/ip4/127.0.0.1/tcp/0'],
        Apps: { alpha: { Port: alphaPort, Command: ['true'] }, beta: { Port: betaPort, Command: ['true'] } }
      })
    )
    const runDir = join(dir, 'run')
    const env = { HOME: dir, PHYSARUM_RUNTIME_DIR: runDir, XDG_RUNTIME_DIR: '' }
    const alloc = spawnCli(['allocator', '--configfile', conf], { env })
    const addr = (await alloc.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)/, 20000))[1]
    const joined = { ...env, PHYSARUM_BOOTSTRAPS: addr }
    const daemons: Daemon[] = [
      alloc,
      spawnCli(['proxy', '--configfile', conf, '--app', 'alpha'], { env: joined }),
      spawnCli(['proxy', '--configfile', conf, '--app', 'beta'], { env: joined }),
      spawnCli(['proxy', '--configfile', conf, '--port', String(clientPort)], { env: joined })
    ]
    for (const d of daemons.slice(1)) await d.waitFor(/proxy listening on http:\/\/127\.0\.0\.1:\d+\//, 20000)
    for (const d of daemons) assert.ok(alive(d.child.pid as number), `still running: ${d.stderr().slice(-500)}`)
    // Each took its own admin port: the role's default where free, another one where not.
    const admins = daemons.map(d => /admin=(127\.0\.0\.1:\d+)/.exec(d.stderr())?.[1])
    assert.equal(new Set(admins).size, 4, `four distinct admin APIs: ${admins.join(', ')}`)
    await waitFor('each daemon recorded in the runtime directory', () => readdirSync(runDir).length === 4, 10000)

    // members, with no --agent: finds a local agent through the runtime directory.
    const rows = await waitFor(
      'members lists all four as alive',
      async () => {
        const r = await runCli(['members', '--configfile', conf, '--json'], { env: joined })
        assert.equal(r.code, 0, r.stderr)
        const list = JSON.parse(r.stdout) as MemberView[]
        return list.filter(m => m.status === 'alive').length === 4 ? list : undefined
      },
      20000,
      250
    )
    assert.deepEqual(rows.map(m => m.roles[0]).sort(), ['allocator', 'proxy', 'proxy', 'proxy'])

    // Requests reach both user-run apps, through the client proxy and the libp2p hop.
    for (const app of ['alpha', 'beta']) {
      const res = await waitFor(
        `${app} through the client proxy`,
        async () => {
          const r = await fetch(`http://127.0.0.1:${clientPort}/${app}/hello`, { signal: AbortSignal.timeout(5000) })
          return r.status === 200 ? r : undefined
        },
        20000,
        250
      )
      assert.equal(res.headers.get('x-instance'), app, `${app} answered itself`)
      await res.text()
      assert.match(res.headers.get('x-physarum-instance') ?? '', /^local-/, 'served by the server-mode proxy')
    }

    // A graceful stop removes its record; none is left once all have stopped.
    for (const d of daemons.reverse()) {
      d.child.kill('SIGTERM')
      await d.exited
    }
    assert.deepEqual(readdirSync(runDir), [])
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
