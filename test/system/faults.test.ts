// Faults under load, with real daemons (CLI child processes) on 127.0.0.1: the
// allocator that hosts the instance killed (-9) or frozen (SIGSTOP), its private
// Docker engine restarted, a proxy restarted, the bootstrap node gone. Each scenario
// runs a steady GET load through a proxy and judges the requests across the event.
// Short form in `npm test`; PHYSARUM_FULL=1 (npm run reliability) runs longer.
import { test, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { waitFor, startAgent, HELLO_COMMAND } from '../helpers/cluster.js'
import {
  CliCluster,
  testCluster,
  sweepClusters,
  instances,
  members,
  portOf,
  recentErrors,
  seenByAll,
  type Started
} from '../helpers/daemons.js'
import { PrivateDocker, privateDockerUnavailable } from '../helpers/private-docker.js'
import { requestAllocation } from '../../src/allocation/protocol.js'
import { Load, summarize, details, describe as describeLoad } from '../helpers/load.js'
import { dockerReady, buildTestImage, labelled, removeLabelled, TEST_IMAGE } from '../helpers/docker.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { assertNothingLeft } from '../helpers/orphans.js'

const FULL = process.env.PHYSARUM_FULL === '1'
const PSK = 'f'.repeat(64)
const engine = dockerReady()
const dockerPeers: string[] = []

after(async () => {
  await sweepClusters()
  if (engine) for (const p of dockerPeers) removeLabelled(p)
})

const cluster = (t: TestContext): CliCluster => testCluster(t, 'faults', PSK)

const hostOf = (instance: string | undefined): string | undefined => instance?.split('@')[1]

/** The hello-world-server as a process-runtime app (answers /healthz with "ok"). */
const processWeb = {
  Command: HELLO_COMMAND,
  Health: { Path: '/healthz' },
  IdleTimeoutS: 300,
  Resources: { MemoryMB: 64 }
}
/** The busybox test image (answers /healthz with "ok" too). */
const dockerWeb = {
  Image: TEST_IMAGE,
  Port: 8080,
  Health: { Path: '/healthz' },
  IdleTimeoutS: 300,
  Resources: { MemoryMB: 64 }
}

for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
  const runtime = signal === 'SIGKILL' && engine ? 'docker' : 'process'
  test(
    `${signal} to the allocator hosting the instance, under load: fail-over, ≥ 99 % served, failed on every member, leftovers ${signal === 'SIGKILL' ? 'adopted' : 'kept'} when it is back (${runtime} runtime)`,
    { timeout: 120000 },
    async t => {
      if (runtime === 'docker') buildTestImage()
      const c = cluster(t)
      const a = await c.allocator({ name: 'a', apps: { web: runtime === 'docker' ? dockerWeb : processWeb }, runtime })
      if (runtime === 'docker') dockerPeers.push(a.peer)
      const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
      // The first request starts the instance on A, the only allocator so far.
      const first = await fetch(`${p.http}/web/healthz`)
      assert.equal(first.status, 200)
      const leftover = first.headers.get('x-physarum-instance')?.split('@')[0]
      assert.equal(hostOf(first.headers.get('x-physarum-instance') ?? undefined), a.peer)
      await first.text()
      const b = await c.allocator({ name: 'b', apps: { web: processWeb }, bootstraps: [a.addr] })
      await seenByAll([p.admin, a.admin], b.peer, ['alive'])

      const load = new Load({
        origin: p.http as string,
        path: '/web/healthz',
        concurrency: 32,
        durationMs: 60000,
        timeoutMs: 30000
      })
      await sleep(FULL ? 5000 : 2000)
      const tFault = load.now()
      a.d.child.kill(signal)
      await seenByAll([p.admin, b.admin], a.peer, ['failed'])
      const tFailed = load.now()
      // A new request is served elsewhere: by B, on an instance allocated there after the fault.
      await waitFor(
        'a new request served by B',
        async () => {
          const r = await fetch(`${p.http as string}/web/healthz`, { signal: AbortSignal.timeout(5000) })
          await r.text()
          return r.status === 200 && hostOf(r.headers.get('x-physarum-instance') ?? undefined) === b.peer
        },
        15000,
        50
      )
      const tFailover = load.now()
      // Frozen or dead for a while: long enough that a request waiting on it would show.
      await sleep(Math.max(0, (FULL ? 20000 : 6000) - (load.now() - tFault)))
      const tResume = load.now()
      let back: Started = a
      if (signal === 'SIGKILL') {
        await a.d.exited
        back = await c.allocator({
          name: 'a',
          apps: { web: runtime === 'docker' ? dockerWeb : processWeb },
          runtime,
          port: portOf(a)
        })
        assert.equal(back.peer, a.peer, 'the same identity after the restart')
      } else {
        a.d.child.kill('SIGCONT')
      }
      await seenByAll([p.admin, b.admin], a.peer, ['alive'])
      const tBack = load.now()
      await sleep(FULL ? 5000 : 1000)
      const outcomes = await load.stop()

      // Its leftover instance: adopted (after kill -9 and a restart) or still its own (after SIGCONT), never orphaned.
      // (A proxy may have started another one on A since: nearer than B, when B's RTT grows beyond SoftReq under load.)
      const list = await instances(back.admin)
      const kept = list.find(i => i.id === leftover)
      assert.equal(kept?.state, 'ready', `the instance A had before is still A's: ${JSON.stringify(list)}`)
      if (signal === 'SIGKILL') assert.equal(kept?.adopted, true, 'the leftover instance was adopted')
      if (runtime === 'docker')
        assert.equal(labelled(a.peer).length, list.length, 'every container of A is an instance A knows')

      const recent = await recentErrors(p)
      const all = summarize(outcomes)
      const during = summarize(outcomes, tFault - 1000, tBack + 1000)
      const failoverMs = tFailover - tFault
      t.diagnostic(`${signal}: all ${describeLoad(all)}`)
      t.diagnostic(`${signal}: across the event ${describeLoad(during)}`)
      t.diagnostic(
        `${signal}: failed on every member ${Math.round(tFailed - tFault)} ms after the signal; a new request answered by B ${Math.round(failoverMs)} ms after`
      )
      if (all.failed > 0) t.diagnostic(`${signal}: the proxy's recent errors: ${recent}; answers: ${details(outcomes)}`)
      assert.ok(during.okRate >= 0.99, `≥ 99 % served across the event: ${describeLoad(during)}; ${recent}`)
      assert.ok(all.okRate >= 0.99, `≥ 99 % served overall: ${describeLoad(all)}`)
      // Stricter than the issue asks: none lost. After kill -9 the GETs in flight on A are retried
      // elsewhere (more of them than the retry budget holds). A frozen A may still answer: the
      // requests it had received wait for it, and those only waiting for a stream to it move on
      // once it is declared failed, so that at most one request per client waits for A's return.
      assert.equal(during.failed, 0, `no request lost: ${describeLoad(during)}; ${recent}`)
      const waited = outcomes.filter(o => o.at < tResume - 4000 && o.at + o.ms > tResume)
      t.diagnostic(`${signal}: ${waited.length} request(s) waited for A to come back`)
      if (signal === 'SIGKILL') assert.equal(waited.length, 0, `${waited.length} request(s) waited for the dead A`)
      else assert.ok(waited.length <= 32, `${waited.length} request(s) waited for the frozen A`)
    }
  )
}

const noPrivateEngine = !engine ? 'no Docker engine answers' : privateDockerUnavailable()
test(
  'restart of the Docker engine under load: the allocator withdraws its dead instances, the proxy fails over, the allocator recovers and leaves no container behind',
  { timeout: 150000, skip: noPrivateEngine ?? false },
  async t => {
    buildTestImage()
    const c = cluster(t)
    const engineOfA = new PrivateDocker()
    // After the cluster (hooks run in order): A stops its containers while its engine still runs;
    // then the engine goes, with whatever containers are left on it.
    t.after(async () => {
      await engineOfA.destroy()
    })
    await engineOfA.start()
    engineOfA.loadImage(TEST_IMAGE)
    const a = await c.allocator({
      name: 'a',
      apps: { web: dockerWeb },
      runtime: 'docker',
      env: { DOCKER_HOST: engineOfA.host }
    })
    const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
    const first = await fetch(`${p.http}/web/healthz`)
    assert.equal(hostOf(first.headers.get('x-physarum-instance') ?? undefined), a.peer)
    await first.text()
    assert.equal(labelled(a.peer, engineOfA.host).length, 1)
    const b = await c.allocator({ name: 'b', apps: { web: processWeb }, bootstraps: [a.addr] })
    await seenByAll([p.admin, a.admin], b.peer, ['alive'])

    const load = new Load({
      origin: p.http as string,
      path: '/web/healthz',
      concurrency: 32,
      durationMs: 120000,
      timeoutMs: 30000
    })
    await sleep(FULL ? 5000 : 2000)
    const tStop = load.now()
    const stopping = engineOfA.stop()
    // The containers died with the engine: withdrawn from A's announcement, served by B meanwhile.
    await waitFor(
      'A announces no ready instance',
      async () => ((await members(p.admin)).find(m => m.peer === a.peer)?.instances.web?.ready ?? 0) === 0,
      15000,
      100
    ).catch(err => {
      throw new Error(`${(err as Error).message}; A's log:\n${a.d.stderr().split('\n').slice(-20).join('\n')}`)
    })
    const tWithdrawn = load.now()
    await stopping
    const tStopped = load.now()
    await waitFor(
      'requests served by B',
      () => load.outcomes.some(o => o.at > tStop && o.status === 200 && hostOf(o.instance) === b.peer),
      15000,
      50
    )
    await sleep(FULL ? 10000 : 1000)
    const tStart = load.now()
    await engineOfA.start()
    // Recovered: A starts containers again on the restarted engine.
    const client = await startAgent({ role: 'proxy', config: { Psk: PSK, Bootstraps: [a.addr] } })
    t.after(async () => {
      await client.stop()
    })
    const inst = await waitFor(
      'A allocates again',
      async () => await requestAllocation(client.node, peerIdFromString(a.peer), 'web', { fresh: true }),
      30000,
      500
    )
    const tRecovered = load.now()
    await sleep(FULL ? 5000 : 1000)
    const outcomes = await load.stop()
    const recent = await recentErrors(p)

    // No orphans: every container of A on its engine is an instance A knows, and runs.
    await waitFor(
      'only the containers A knows are left',
      async () => {
        const known = (await instances(a.admin)).map(i => i.id).sort()
        const ids = labelled(a.peer, engineOfA.host)
        return known.includes(inst.id) && ids.length === known.length ? true : undefined
      },
      15000,
      250
    ).catch(async err => {
      throw new Error(
        `${(err as Error).message}: containers ${JSON.stringify(labelled(a.peer, engineOfA.host))}, instances ${JSON.stringify(await instances(a.admin))}`
      )
    })
    const all = summarize(outcomes)
    t.diagnostic(`dockerd restart: ${describeLoad(all)}`)
    t.diagnostic(
      `dockerd restart: instance withdrawn ${Math.round(tWithdrawn - tStop)} ms after the engine began to stop (it took ${Math.round(tStopped - tStop)} ms to stop); allocating again ${Math.round(tRecovered - tStart)} ms after it was started again`
    )
    if (all.failed > 0)
      t.diagnostic(`dockerd restart: the proxy's recent errors: ${recent}; answers: ${details(outcomes)}`)
    assert.ok(all.okRate >= 0.99, `≥ 99 % served: ${describeLoad(all)}; ${recent}`)
  }
)

test(
  'kill -9 of a proxy under load, started again on its port: it rebuilds its view and serves within seconds',
  { timeout: 90000 },
  async t => {
    const c = cluster(t)
    const a = await c.allocator({ name: 'a', apps: { web: processWeb } })
    const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
    const port = Number(new URL(p.http as string).port)
    const warm = await fetch(`${p.http}/web/healthz`)
    assert.equal(warm.status, 200)
    await warm.text()
    const load = new Load({
      origin: p.http as string,
      path: '/web/healthz',
      concurrency: 32,
      durationMs: 60000,
      timeoutMs: 30000,
      backoffMs: 50
    })
    await sleep(FULL ? 5000 : 2000)
    p.d.child.kill('SIGKILL')
    await p.d.exited
    const tKilled = load.now()
    await sleep(1000)
    const tSpawn = load.now()
    const again = await c.proxy({ name: 'p', bootstraps: [a.addr], port })
    const tListening = load.now()
    await waitFor('served again', () => load.outcomes.some(o => o.at > tSpawn && o.status === 200), 20000, 50)
    const tServed = load.outcomes
      .filter(o => o.at > tSpawn && o.status === 200)
      .reduce((t, o) => Math.min(t, o.at + o.ms), Infinity)
    await sleep(FULL ? 10000 : 2000)
    const outcomes = await load.stop()
    assert.equal(
      (await members(again.admin)).find(m => m.peer === a.peer)?.status,
      'alive',
      'the new proxy knows the allocator'
    )
    const before = summarize(outcomes, 0, tKilled - 500)
    const afterRestart = summarize(outcomes, tServed)
    t.diagnostic(`proxy restart: before the kill ${describeLoad(before)}`)
    t.diagnostic(
      `proxy restart: serving ${Math.round(tServed - tSpawn)} ms after the new process was spawned (${Math.round(tServed - tListening)} ms after it listened); from then on ${describeLoad(afterRestart)}`
    )
    assert.ok(tServed - tSpawn < 10000, `served again within 10 s of the restart (${Math.round(tServed - tSpawn)} ms)`)
    assert.equal(before.failed, 0, describeLoad(before))
    assert.ok(afterRestart.okRate >= 0.99, `≥ 99 % served once it is back: ${describeLoad(afterRestart)}`)
  }
)

test(
  'the bootstrap node dies: the cluster keeps serving, and new nodes join through another address in Bootstraps',
  { timeout: 90000 },
  async t => {
    const c = cluster(t)
    // The bootstrap hosts nothing, so that its death tests membership alone.
    // Never started again: its watchdog reaps (nothing) after 1 s instead of the default 60 s, and is gone by the end.
    const boot = await c.allocator({ name: 'boot', apps: {}, allocator: { ReapGraceS: 1 } })
    const [b, cc] = await Promise.all([
      c.allocator({ name: 'b', apps: { web: processWeb }, bootstraps: [boot.addr] }),
      c.allocator({ name: 'c', apps: { web: processWeb }, bootstraps: [boot.addr] })
    ])
    const p = await c.proxy({ name: 'p', bootstraps: [boot.addr, b.addr] })
    await seenByAll([p.admin, b.admin], cc.peer, ['alive'])
    const load = new Load({
      origin: p.http as string,
      path: '/web/healthz',
      concurrency: 32,
      durationMs: 60000,
      timeoutMs: 30000
    })
    await sleep(FULL ? 5000 : 2000)
    const tKill = load.now()
    boot.d.child.kill('SIGKILL')
    await seenByAll([p.admin, b.admin, cc.admin], boot.peer, ['failed'])
    // Newcomers list the dead bootstrap first.
    const tJoin = Date.now()
    const [d, q] = await Promise.all([
      c.allocator({ name: 'd', apps: { web: processWeb }, bootstraps: [boot.addr, cc.addr] }),
      c.proxy({ name: 'q', bootstraps: [boot.addr, b.addr] })
    ])
    await seenByAll([p.admin, b.admin, cc.admin], d.peer, ['alive'])
    for (const peer of [b.peer, cc.peer, d.peer, p.peer]) await seenByAll([q.admin], peer, ['alive'])
    const joinedMs = Date.now() - tJoin
    const viaQ = await fetch(`${q.http}/web/healthz`)
    assert.equal(viaQ.status, 200, 'the new proxy serves')
    await viaQ.text()
    await sleep(FULL ? 10000 : 1000)
    const outcomes = await load.stop()
    const during = summarize(outcomes, tKill)
    t.diagnostic(
      `bootstrap death: after the kill ${describeLoad(during)}; two newcomers joined through the second address in ${joinedMs} ms`
    )
    assert.ok(during.okRate >= 0.99, `≥ 99 % served: ${describeLoad(during)}; ${await recentErrors(p)}`)
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
