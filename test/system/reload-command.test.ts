// physarum reload (issue 16, item 6, the command) with real CLI processes: it asks the local
// agent (found in the runtime directory) to reload as SIGHUP does; a new catalog app is then
// announced by the same process; an invalid file is refused in one line (exit 1) and the old
// configuration stays; without the token nothing is reloaded.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCli, runCli, killAll } from '../helpers/cli.js'
import { helloApp, waitFor } from '../helpers/cluster.js'
import type { MemberView } from '../../src/cluster/agent.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const dir = mkdtempSync(join(tmpdir(), 'physarum-reload-command-'))
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

test('physarum reload: applied, refused with exit 1, and never without the token', { timeout: 60000 }, async () => {
  const conf = join(dir, 'conf.json')
  const write = (body: Record<string, unknown>): void => {
    writeFileSync(
      conf,
      JSON.stringify({
        Psk: 'reload-command-test',
        Listen: ['/ip4/127.0.0.1/tcp/0'],
        Allocator: { Runtime: 'process' },
        ...body
      })
    )
  }
  write({ Apps: { hello: helloApp() } })
  const env = { HOME: dir, PHYSARUM_RUNTIME_DIR: join(dir, 'run'), XDG_RUNTIME_DIR: '' }
  const alloc = spawnCli(['allocator', '--configfile', conf], { env })
  const admin = (await alloc.waitFor(/admin=(127\.0\.0\.1:\d+)/, 20000))[1]
  await alloc.waitFor(/catalog: hello;/)
  const catalog = async (): Promise<string[]> => {
    const self = (await (await fetch(`http://${admin}/v1/self`)).json()) as MemberView
    return self.catalog
  }

  // Without the token (another file): refused, the new app not taken.
  write({ Apps: { hello: helloApp(), hello2: helloApp() } })
  const wrong = join(dir, 'wrong.token')
  writeFileSync(wrong, 'cd'.repeat(32), { mode: 0o600 })
  const anon = await runCli(['reload', '--token-file', wrong], { env })
  assert.equal(anon.code, 1)
  assert.match(anon.stderr, /^physarum: agent at 127\.0\.0\.1:\d+: wrong admin token\n$/)
  assert.deepEqual(await catalog(), ['hello'])

  const ok = await runCli(['reload'], { env })
  assert.equal(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /^allocator 127\.0\.0\.1:\d+: reload: configuration reloaded\n$/)
  await waitFor('hello2 in the catalog of the same process', async () => (await catalog()).includes('hello2'), 5000)

  write({ Apps: { hello: helloApp() }, Bogus: 1 })
  const refused = await runCli(['reload'], { env })
  assert.equal(refused.code, 1)
  assert.match(
    refused.stderr,
    /^physarum: agent at 127\.0\.0\.1:\d+: reload: reload refused, the running configuration stays: config file .*: unknown key Bogus[^\n]*\n$/
  )
  assert.deepEqual(await catalog(), ['hello', 'hello2'], 'the old configuration stays')
  assert.match(alloc.stderr(), /reload: reload refused/)

  alloc.child.kill('SIGTERM')
  assert.equal((await alloc.exited).code, 0)
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
