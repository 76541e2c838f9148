// Faults under load, with real daemons (CLI child processes) on 127.0.0.1: the
// allocator that hosts the instance killed (-9) or frozen (SIGSTOP), its private
// Docker engine restarted, a proxy restarted, the bootstrap node gone. Each scenario
// runs a steady GET load through a proxy and judges the requests across the event.
// Short form in `npm test`; PHYSARUM_FULL=1 (npm run reliability) runs longer.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killAll } from './helpers/cli.js'
import { waitFor, HELLO_COMMAND } from './helpers/cluster.js'
import { CliCluster, instances, portOf, recentErrors, seenByAll, type Started } from './helpers/daemons.js'
import { Load, summarize, describe as describeLoad } from './helpers/load.js'
import { dockerReady, buildTestImage, labelled, removeLabelled, TEST_IMAGE } from './helpers/docker.js'

const FULL = process.env.PHYSARUM_FULL === '1'
const PSK = 'f'.repeat(64)
const engine = dockerReady()
const dirs: string[] = []
const dockerPeers: string[] = []

after(async () => {
  await killAll()
  if (engine) for (const p of dockerPeers) removeLabelled(p)
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function cluster (): CliCluster {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-faults-'))
  dirs.push(dir)
  return new CliCluster(dir, PSK)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const hostOf = (instance: string | undefined): string | undefined => instance?.split('@')[1]

/** The hello-world-server as a process-runtime app (answers /healthz with "ok"). */
const processWeb = { Command: HELLO_COMMAND, Health: { Path: '/healthz' }, IdleTimeoutS: 300, Resources: { MemoryMB: 64 } }
/** The busybox test image (answers /healthz with "ok" too). */
const dockerWeb = { Image: TEST_IMAGE, Port: 8080, Health: { Path: '/healthz' }, IdleTimeoutS: 300, Resources: { MemoryMB: 64 } }

for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
  const runtime = signal === 'SIGKILL' && engine ? 'docker' : 'process'
  test(`${signal} to the allocator hosting the instance, under load: fail-over, ≥ 99 % served, failed on every member, leftovers ${signal === 'SIGKILL' ? 'adopted' : 'kept'} when it is back (${runtime} runtime)`, { timeout: 120000 }, async (t) => {
    if (runtime === 'docker') buildTestImage()
    const c = cluster()
    const a = await c.allocator({ name: 'a', apps: { web: runtime === 'docker' ? dockerWeb : processWeb }, runtime })
    if (runtime === 'docker') dockerPeers.push(a.peer)
    const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
    // The first request starts the instance on A, the only allocator so far.
    const first = await fetch(`${p.http}/web/healthz`)
    assert.equal(first.status, 200)
    assert.equal(hostOf(first.headers.get('x-physarum-instance') ?? undefined), a.peer)
    await first.text()
    const b = await c.allocator({ name: 'b', apps: { web: processWeb }, bootstraps: [a.addr] })
    await seenByAll([p.admin, a.admin], b.peer, ['alive'])

    const load = new Load({ origin: p.http as string, path: '/web/healthz', concurrency: 32, durationMs: 60000, timeoutMs: 30000 })
    await sleep(FULL ? 5000 : 2000)
    const tFault = load.now()
    a.d.child.kill(signal)
    await seenByAll([p.admin, b.admin], a.peer, ['failed'])
    const tFailed = load.now()
    // Served elsewhere: by B, on an instance allocated there after the fault.
    await waitFor('requests served by B', () => load.outcomes.some(o => o.at > tFault && o.status === 200 && hostOf(o.instance) === b.peer), 15000, 50)
    // Frozen or dead for a while: long enough that a request waiting on it would show.
    await sleep(Math.max(0, (FULL ? 20000 : 8000) - (load.now() - tFault)))
    const tResume = load.now()
    let back: Started = a
    if (signal === 'SIGKILL') {
      await a.d.exited
      back = await c.allocator({ name: 'a', apps: { web: runtime === 'docker' ? dockerWeb : processWeb }, runtime, port: portOf(a) })
      assert.equal(back.peer, a.peer, 'the same identity after the restart')
    } else {
      a.d.child.kill('SIGCONT')
    }
    await seenByAll([p.admin, b.admin], a.peer, ['alive'])
    const tBack = load.now()
    await sleep(FULL ? 5000 : 2000)
    const outcomes = await load.stop()

    // Its leftover instance: adopted (after kill -9 and a restart) or still its own (after SIGCONT), never orphaned.
    const list = await instances(back.admin)
    assert.equal(list.length, 1, `one instance on A: ${JSON.stringify(list)}`)
    if (signal === 'SIGKILL') assert.equal(list[0].adopted, true, 'the leftover instance was adopted')
    if (runtime === 'docker') assert.equal(labelled(a.peer).length, list.length, 'every container of A is an instance A knows')

    const recent = await recentErrors(p)
    const all = summarize(outcomes)
    const during = summarize(outcomes, tFault - 1000, tBack + 1000)
    const failoverMs = Math.min(...outcomes.filter(o => o.at > tFault && o.status === 200 && hostOf(o.instance) === b.peer).map(o => o.at + o.ms)) - tFault
    t.diagnostic(`${signal}: all ${describeLoad(all)}`)
    t.diagnostic(`${signal}: across the event ${describeLoad(during)}`)
    t.diagnostic(`${signal}: failed on every member ${Math.round(tFailed - tFault)} ms after the signal; first answer from B ${Math.round(failoverMs)} ms after`)
    if (all.failed > 0) t.diagnostic(`${signal}: the proxy's recent errors: ${recent}`)
    assert.ok(during.okRate >= 0.99, `≥ 99 % served across the event: ${describeLoad(during)}; ${recent}`)
    assert.ok(all.okRate >= 0.99, `≥ 99 % served overall: ${describeLoad(all)}`)
    // Stricter than the issue asks: the GETs in flight on the lost host are retried elsewhere
    // (more of them than the retry budget holds), and none waits for the host to come back.
    assert.equal(during.failed, 0, `no request lost: ${describeLoad(during)}; ${recent}`)
    const waited = outcomes.filter(o => o.at < tResume - 4000 && o.at + o.ms > tResume)
    assert.equal(waited.length, 0, `${waited.length} request(s) sent while A was ${signal === 'SIGKILL' ? 'dead' : 'frozen'} waited for it to come back`)
  })
}
