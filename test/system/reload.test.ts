// SIGHUP reloads the configuration of a running daemon (real CLI processes): an app added to
// the allocator's catalog can be cold-started at once, without a restart, and an invalid
// file is refused in one line while the old configuration keeps serving.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCli, killAll, alive } from '../helpers/cli.js'
import { helloApp, waitFor } from '../helpers/cluster.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const dir = mkdtempSync(join(tmpdir(), 'physarum-reload-'))
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

test(
  'SIGHUP: a new catalog app starts without a restart; an invalid file is refused, the old config kept',
  { timeout: 90000 },
  async () => {
    const conf = join(dir, 'conf.json')
    const write = (apps: Record<string, unknown>, extra: Record<string, unknown> = {}): void => {
      writeFileSync(
        conf,
        JSON.stringify({
          Psk: 'reload-test-key',
          Listen: ['/ip4/127.0.0.1/tcp/0'],
          Apps: apps,
          Allocator: { Runtime: 'process' },
          ...extra
        })
      )
    }
    write({ hello: helloApp() })
    const env = { HOME: dir, PHYSARUM_RUNTIME_DIR: join(dir, 'run') }
    const alloc = spawnCli(['allocator', '--configfile', conf, '--admin', '127.0.0.1:0'], { env })
    const addr = (await alloc.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)/, 20000))[1]
    await alloc.waitFor(/catalog: hello;/)
    const port = await reservePort()
    const proxy = spawnCli(['proxy', '--configfile', conf, '--port', String(port), '--admin', '127.0.0.1:0'], {
      env: { ...env, PHYSARUM_BOOTSTRAPS: addr }
    })
    await proxy.waitFor(/proxy listening on/, 20000)
    const get = async (path: string): Promise<number> => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(15000) })
      await r.text()
      return r.status
    }
    await waitFor('hello answers', async () => (await get('/hello/hello')) === 200, 20000, 250)
    assert.equal(await get('/hello2/hello'), 404, 'not in any catalog yet')

    write({ hello: helloApp(), hello2: helloApp() }, { Log: { Level: 'debug' } })
    alloc.child.kill('SIGHUP')
    await alloc.waitFor(/SIGHUP: configuration reloaded/)
    await waitFor(
      'hello2 cold-starts on the same allocator process',
      async () => (await get('/hello2/hello')) === 200,
      20000,
      250
    )
    assert.ok(alive(alloc.child.pid as number), 'no restart')

    // An unknown key: one line naming it, the old catalog stays and serves.
    write({ hello: helloApp(), hello2: helloApp() }, { Allocatr: {} })
    alloc.child.kill('SIGHUP')
    const refused = (await alloc.waitFor(/SIGHUP: reload refused[^\n]*/))[0]
    assert.match(refused, /Allocatr/)
    assert.equal(await get('/hello/hello'), 200)
    assert.equal(await get('/hello2/hello'), 200)
    assert.ok(alive(alloc.child.pid as number))
    for (const d of [proxy, alloc]) {
      d.child.kill('SIGTERM')
      assert.equal((await d.exited).code, 0)
    }
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
