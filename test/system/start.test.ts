// `npm start` (its part after the build: scripts/start.mjs): an allocator and a proxy on
// the default config answer the printed curl line through the whole path, and Ctrl-C
// (SIGINT) stops both, leaving no daemon, instance process or container behind.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { readFileSync, readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { ROOT, spawnCli, killAll, exitWithin, alive } from '../helpers/cli.js'
import { waitFor } from '../helpers/cluster.js'
import { dockerReady, labelled, removeLabelled } from '../helpers/docker.js'
import { assertNothingLeft } from '../helpers/orphans.js'

after(async () => {
  await killAll()
})

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise(resolve => s.close(resolve))
  return port
}

/** PIDs of processes running the instance `id` (the runtime sets PHYSARUM_INSTANCE). */
function instanceProcesses(id: string): number[] {
  return readdirSync('/proc')
    .filter(p => /^\d+$/.test(p))
    .filter(p => {
      try {
        return readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`PHYSARUM_INSTANCE=${id}`)
      } catch {
        return false
      }
    })
    .map(Number)
}

test('npm start serves the hello-world-server curl and stops cleanly on Ctrl-C', { timeout: 120000 }, async () => {
  const port = await freePort()
  const engine = dockerReady()
  const start = spawnCli([], { bin: resolve(ROOT, 'scripts/start.mjs'), env: { PORT: String(port) } })
  let allocatorPeer: string | undefined
  const pids: number[] = []
  try {
    for (const name of ['allocator', 'proxy'])
      pids.push(Number((await start.waitFor(new RegExp(`${name} pid (\\d+)`), 90000))[1]))
    const [line] = await start.waitFor(
      new RegExp(`curl http://127\\.0\\.0\\.1:${port}/hello-world-server/hello`),
      90000
    )
    allocatorPeer = (await start.waitFor(/allocator (12D3KooW\w+) started/))[1]
    const r = await waitFor(
      'the curl line answers',
      async () => {
        const res = await fetch(line.slice('curl '.length))
        return res.status === 200 ? res : undefined
      },
      30000,
      200
    )
    assert.equal(await r.text(), 'hello world\n')
    const instance = (r.headers.get('x-physarum-instance') ?? '').split('@')[0]
    assert.match(start.stderr(), engine ? /runtime: docker/ : /runtime: process/)
    if (engine) assert.equal(labelled(allocatorPeer).length, 1, 'the instance is a container')
    else assert.equal(instanceProcesses(instance).length, 1, 'the instance is a process')

    start.child.kill('SIGINT')
    const exit = await exitWithin(start, 30000)
    assert.deepEqual(exit, { code: 0, signal: null })
    assert.match(start.stderr(), /allocator \| .*stopped/)
    assert.match(start.stderr(), /proxy +\| .*stopped/)
    assert.deepEqual(pids.filter(alive), [], 'both daemons exited')
    assert.deepEqual(instanceProcesses(instance), [])
    if (engine) assert.deepEqual(labelled(allocatorPeer), [])
  } finally {
    // The daemons run in their own process group: end them by PID if the script did not.
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL')
    if (engine && allocatorPeer !== undefined) removeLabelled(allocatorPeer)
  }
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
