// physarum apps and physarum scale (issue 16, item 5) with real CLI processes: two
// allocators; `scale hello --min 2` brings two warm instances (one on each) that outlive
// IdleTimeoutS; an allocator restarted alone keeps the setting (its state directory) and
// warms both itself; `--min 0` lets them be culled when idle; `apps` shows all of it.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.js'
import { helloApp, waitFor } from '../helpers/cluster.js'
import { newCluster, sweepClusters, type Started } from '../helpers/daemons.js'
import type { AppView } from '../../src/cluster/apps.js'
import { assertNothingLeft } from '../helpers/orphans.js'

after(async () => {
  await sweepClusters()
})

test(
  'scale --min 2 keeps two warm instances across idle time and a restart; --min 0 lets them go',
  { timeout: 150000 },
  async () => {
    const c = newCluster('apps-scale', 'apps-scale-test')
    const apps = { hello: helloApp({ IdleTimeoutS: 2 }) }
    const a = await c.allocator({ name: 'a', apps })
    let b: Started = await c.allocator({ name: 'b', apps, bootstraps: [a.addr] })
    const cli = async (
      args: string[],
      s: Started,
      name: string
    ): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      await runCli([
        ...args,
        '--agent',
        s.admin,
        ...(args[0] === 'apps' ? [] : ['--token-file', join(c.dir, name, 'admin.token')])
      ])
    const view = async (s: Started, name: string): Promise<AppView> => {
      const r = await cli(['apps', 'hello', '--json'], s, name)
      assert.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as AppView
    }
    await waitFor('both allocators list hello', async () => (await view(a, 'a')).runsOn.length === 2, 20000, 200)
    assert.equal((await view(a, 'a')).instances.length, 0, 'nothing runs before a scale')

    // Without the token: refused, nothing set.
    const anon = await runCli([
      'scale',
      'hello',
      '--min',
      '2',
      '--agent',
      a.admin,
      '--token-file',
      join(c.dir, 'b', 'nope')
    ])
    assert.equal(anon.code, 2)
    assert.match(anon.stderr, /^physarum: no admin token at /)
    assert.equal((await view(a, 'a')).scale, null)

    const set = await cli(['scale', 'hello', '--min', '2'], a, 'a')
    assert.equal(set.code, 0, set.stderr)
    assert.match(
      set.stdout,
      /^scale of hello set to min 2 through the agent 127\.0\.0\.1:\d+ \(version \d+\); it spreads to every member\n$/
    )
    // Two warm instances, one on each allocator (the deficit is dealt out), seen from the other allocator too.
    const warm = await waitFor(
      'two ready instances of hello',
      async () => {
        const v = await view(b, 'b')
        return v.ready === 2 ? v : undefined
      },
      30000,
      200
    )
    assert.equal(new Set(warm.instances.map(i => i.peer)).size, 2, 'one on each allocator')
    assert.deepEqual(warm.scale && { min: warm.scale.min, max: warm.scale.max }, { min: 2, max: undefined })
    for (const i of warm.instances) assert.match(i.address ?? '', /^127\.0\.0\.1:\d+$/)
    // Idle for over twice IdleTimeoutS: the same two are still there.
    await new Promise(resolve => setTimeout(resolve, 5000))
    const later = await view(a, 'a')
    assert.deepEqual(later.instances.map(i => i.id).sort(), warm.instances.map(i => i.id).sort(), 'none culled')
    const table = await cli(['apps'], a, 'a')
    assert.equal(table.code, 0, table.stderr)
    assert.match(
      table.stdout,
      /^APP +RUNS ON +SCALE +READY +STARTING\nhello +2 allocators +min 2 +2 +0\n {2}INSTANCE +HOST/
    )

    // Both stop; b comes back alone: the setting is in its state directory, and it warms two itself.
    for (const s of [a, b]) {
      s.d.child.kill('SIGTERM')
      await s.d.exited
    }
    b = await c.allocator({ name: 'b', apps })
    const alone = await waitFor(
      'b alone keeps two warm',
      async () => {
        const v = await view(b, 'b')
        return v.ready === 2 ? v : undefined
      },
      30000,
      200
    )
    assert.equal(alone.scale?.min, 2)
    assert.equal(new Set(alone.instances.map(i => i.peer)).size, 1)

    // --min 0: culled once idle.
    assert.equal((await cli(['scale', 'hello', '--min', '0'], b, 'b')).code, 0)
    await waitFor('culled when idle', async () => (await view(b, 'b')).instances.length === 0, 20000, 200)
    const unknown = await cli(['apps', 'nope'], b, 'b')
    assert.equal(unknown.code, 1)
    assert.equal(unknown.stderr, 'physarum: unknown app nope: no member lists it, hosts it or has a scale for it\n')
    b.d.child.kill('SIGTERM')
    assert.equal((await b.d.exited).code, 0)
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
