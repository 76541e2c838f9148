// Load and graceful paths, with real daemons (CLI child processes) on 127.0.0.1:
// 200 concurrent clients against a warm app (zero errors, p50/p99 reported); a burst
// of 500 concurrent requests for a cold app from 5 proxies (every one answered, at
// most one instance per allocator); SIGTERM to a proxy and to an allocator under load
// (in-flight requests complete, new ones refused or rerouted, none lost).
// Short form in `npm test`; PHYSARUM_FULL=1 (npm run reliability) runs longer.
import { test, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Pool } from 'undici'
import { spawn, type ChildProcess } from 'node:child_process'
import { waitFor, HELLO_COMMAND } from '../helpers/cluster.js'
import {
  CliCluster,
  testCluster,
  sweepClusters,
  instances,
  readyAt,
  recentErrors,
  seenByAll,
  type Started
} from '../helpers/daemons.js'
import { Load, summarize, describe as describeLoad, type Outcome } from '../helpers/load.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { assertNothingLeft } from '../helpers/orphans.js'

const FULL = process.env.PHYSARUM_FULL === '1'
const PSK = 'e'.repeat(64)

after(async () => {
  await sweepClusters()
})

const cluster = (t: TestContext): CliCluster => testCluster(t, 'load', PSK)

const hello = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  Command: HELLO_COMMAND,
  Health: { Path: '/healthz' },
  IdleTimeoutS: 300,
  Resources: { MemoryMB: 64 },
  ...over
})

test('200 concurrent clients against a warm app: zero errors', { timeout: 180000 }, async t => {
  const c = cluster(t)
  const a = await c.allocator({ name: 'a', apps: { hello: hello() } })
  const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
  const warm = await fetch(`${p.http}/hello/hello`)
  assert.equal(warm.status, 200)
  await warm.text()
  const durationMs = FULL ? 60000 : 8000
  // A few seconds to open the connections and let scale-out settle, then the measured run.
  const warmup = new Load({
    origin: p.http as string,
    path: '/hello/hello',
    concurrency: 200,
    durationMs: FULL ? 10000 : 2000
  })
  const w = summarize(await warmup.finished())
  const load = new Load({ origin: p.http as string, path: '/hello/hello', concurrency: 200, durationMs })
  const s = summarize(await load.finished())
  const inst = (await instances(a.admin)).filter(i => i.app === 'hello').length
  t.diagnostic(`warm-up (${FULL ? 10 : 2} s): ${describeLoad(w)}`)
  t.diagnostic(`200 clients for ${durationMs / 1000} s: ${describeLoad(s)}; ${inst} instance(s)`)
  assert.equal(w.failed, 0, `warm-up: ${describeLoad(w)}; ${await recentErrors(p)}`)
  assert.equal(s.failed, 0, `${describeLoad(s)}; ${await recentErrors(p)}`)
  assert.ok(s.total > 200, 'every client was answered more than once')
})

/** Busy loops beside the cluster, as noisy neighbours on a shared host; ended by PID. */
function cpuHogs(t: TestContext, n: number): ChildProcess[] {
  const hogs = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
  const end = (): void => {
    for (const h of hogs) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL')
  }
  t.after(end)
  setTimeout(end, 60000).unref()
  return hogs
}

test(
  'a burst of 500 concurrent requests for a cold app from 5 proxies, on starved cores: every one answered, at most one instance per allocator, no member taken for failed',
  { timeout: 120000 },
  async t => {
    const c = cluster(t)
    // Scale-out (TargetConcurrency) is kept out of it, so that the count measures the cold start alone.
    const app = { burst: hello({ TargetConcurrency: 1000 }) }
    // The default failure-detector timeouts (0.5 s probe, 1.5 s suspicion). Eight daemons and 500
    // new streams, beside two busy loops, starve the two cores for seconds: before local health
    // (src/cluster/membership/health.ts) members took one another for failed, falsely, in every run.
    const a1 = await c.allocator({ name: 'a1', apps: app })
    const [a2, a3] = await Promise.all([
      c.allocator({ name: 'a2', apps: app, bootstraps: [a1.addr] }),
      c.allocator({ name: 'a3', apps: app, bootstraps: [a1.addr] })
    ])
    const allocators = [a1, a2, a3]
    const proxies: Started[] = []
    for (let i = 0; i < 5; i++)
      proxies.push(
        await c.proxy({ name: `p${i}`, bootstraps: [a1.addr, a2.addr], apps: { burst: { TargetConcurrency: 1000 } } })
      )
    for (const al of allocators)
      await seenByAll(
        proxies.map(p => p.admin),
        al.peer,
        ['alive']
      )
    await sleep(2000)

    const hogs = cpuHogs(t, 2)
    const perProxy = 100
    const pools = proxies.map(
      p => new Pool(p.http as string, { connections: perProxy, headersTimeout: 60000, bodyTimeout: 60000 })
    )
    const t0 = performance.now()
    const results = await Promise.all(
      pools.flatMap(pool =>
        Array.from({ length: perProxy }, async () => {
          try {
            const r = await pool.request({ method: 'GET', path: '/burst/hello' })
            const body = await r.body.text()
            const ok = r.statusCode === 200 && body === 'hello world\n'
            return {
              status: r.statusCode,
              ok,
              ms: performance.now() - t0,
              instance: ok ? String(r.headers['x-physarum-instance']) : body.slice(0, 300),
              timing: String(r.headers['server-timing'])
            }
          } catch (err) {
            return { status: 0, ok: false, ms: performance.now() - t0, instance: (err as Error).message, timing: '' }
          }
        })
      )
    )
    await Promise.all(
      pools.map(async p => {
        await p.close()
      })
    )
    for (const h of hogs) h.kill('SIGKILL')
    const started = await Promise.all(
      allocators.map(async al => (await instances(al.admin)).filter(i => i.app === 'burst').length)
    )
    const served = new Set(results.filter(r => r.ok).map(r => r.instance))
    const ms = results.map(r => r.ms).sort((x, y) => x - y)
    t.diagnostic(
      `burst: ${results.filter(r => r.ok).length}/${results.length} answered 200 in ${Math.round(ms[ms.length - 1])} ms (median ${Math.round(ms[Math.floor(ms.length / 2)])} ms); instances started per allocator: ${started.join(', ')} (${served.size} served the burst)`
    )
    const suspicions = [...allocators, ...proxies].flatMap(x =>
      x.d
        .stderr()
        .split('\n')
        .filter(l => / is (suspect|failed)/.test(l))
        .map(l => l.slice(11, 40) + l.slice(l.indexOf(' is '), l.indexOf(' is ') + 12) + (/was=\w+/.exec(l)?.[0] ?? ''))
    )
    if (suspicions.length > 0)
      t.diagnostic(
        `burst: ${suspicions.length} suspicion(s) or failure(s) logged: ${suspicions.slice(0, 10).join(' | ')}`
      )
    const slow = [...allocators, ...proxies].flatMap(x =>
      x.d
        .stderr()
        .split('\n')
        .filter(l => /this node is slow/.test(l))
        .map(l => {
          const m = /event loop (\d+) ms late\): failure-detector timeouts (×\d+)/.exec(l)
          return m === null ? l : `${m[1]} ms late → ${m[2]}`
        })
    )
    t.diagnostic(`burst: ${slow.length} of 8 daemons stretched their timeouts: ${slow.join(' | ')}`)
    const timing = (k: string): number[] =>
      results
        .map(r => Number(new RegExp(`${k};dur=([\\d.]+)`).exec(r.timing)?.[1] ?? NaN))
        .filter(Number.isFinite)
        .sort((x, y) => x - y)
    t.diagnostic(
      `burst: server-timing medians (max): ${['placement', 'cold', 'upstream']
        .map(k => {
          const v = timing(k)
          return `${k} ${Math.round(v[Math.floor(v.length / 2)])} (${Math.round(v[v.length - 1])})`
        })
        .join(', ')} ms`
    )
    const bad = results.filter(r => !r.ok)
    const kinds = new Map<string, number>()
    for (const r of bad) {
      const k = `${r.status} ${r.instance
        .replace(/12D3\w+/g, 'PEER')
        .replace(/[0-9a-f]{12}/g, 'ID')
        .slice(0, 160)}`
      kinds.set(k, (kinds.get(k) ?? 0) + 1)
    }
    if (bad.length > 0) t.diagnostic(`burst: failures ${JSON.stringify([...kinds])}`)
    assert.equal(bad.length, 0, `every request answered 200: ${JSON.stringify(bad.slice(0, 5))}`)
    assert.deepEqual(
      suspicions.filter(l => / is failed/.test(l)),
      [],
      'no member taken for failed: they were all slow, none dead'
    )
    for (const n of started) assert.ok(n <= 1, `at most one instance per allocator: ${started.join(', ')}`)
    assert.ok(started.reduce((x, y) => x + y, 0) >= 1)
  }
)

/** Requests that neither got a 200 nor were refused before anything was sent. */
function lost(outcomes: Outcome[]): Outcome[] {
  return outcomes.filter(o => o.status !== 200 && o.error !== 'ECONNREFUSED')
}

test(
  'SIGTERM to a proxy under load: in-flight requests complete, new connections are refused, none lost',
  { timeout: 90000 },
  async t => {
    const c = cluster(t)
    const a = await c.allocator({ name: 'a', apps: { hello: hello() } })
    const p = await c.proxy({ name: 'p', bootstraps: [a.addr] })
    const warm = await fetch(`${p.http}/hello/hello`)
    await warm.text()
    // Half the clients ask for a slow answer, so that requests are in flight at the signal.
    const load = new Load({
      origin: p.http as string,
      path: i => (i % 2 === 0 ? '/hello/slow?ms=300' : '/hello/hello'),
      concurrency: 32,
      durationMs: 60000,
      backoffMs: 50
    })
    await sleep(FULL ? 10000 : 2000)
    const tTerm = load.now()
    p.d.child.kill('SIGTERM')
    const { code } = await p.d.exited
    const tExit = load.now()
    await sleep(500)
    const outcomes = await load.stop()
    const inFlight = outcomes.filter(o => o.at < tTerm && o.at + o.ms > tTerm)
    const gone = lost(outcomes)
    t.diagnostic(
      `proxy SIGTERM: exit ${code} ${Math.round(tExit - tTerm)} ms after the signal; ${inFlight.length} request(s) in flight at the signal, ${inFlight.filter(o => o.status === 200).length} completed; after it: ${summarize(outcomes, tTerm).ok} served, ${outcomes.filter(o => o.error === 'ECONNREFUSED').length} refused, ${gone.length} lost`
    )
    assert.equal(code, 0, p.d.stderr())
    assert.ok(inFlight.length > 0)
    assert.deepEqual(
      gone.map(o => `${o.error ?? o.status} after ${Math.round(o.at - tTerm)} ms (reused connection: ${o.reused})`),
      [],
      'no request lost'
    )
  }
)

test(
  'SIGTERM to an allocator under load: in-flight requests complete, new ones go to the other allocator, none lost',
  { timeout: 90000 },
  async t => {
    const c = cluster(t)
    // Both keep an instance warm, so that the proxy balances over the two.
    const app = { hello: hello({ MinInstances: 1 }) }
    const a = await c.allocator({ name: 'a', apps: app })
    const b = await c.allocator({ name: 'b', apps: app, bootstraps: [a.addr] })
    const p = await c.proxy({ name: 'p', bootstraps: [a.addr, b.addr] })
    await waitFor('the proxy sees both instances', async () => (await readyAt(p.admin, 'hello')) === 2, 20000, 100)
    const load = new Load({
      origin: p.http as string,
      path: i => (i % 2 === 0 ? '/hello/slow?ms=300' : '/hello/hello'),
      concurrency: 32,
      durationMs: 60000
    })
    await sleep(FULL ? 10000 : 2000)
    const tTerm = load.now()
    a.d.child.kill('SIGTERM')
    const { code } = await a.d.exited
    const tExit = load.now()
    await sleep(FULL ? 5000 : 1000)
    const outcomes = await load.stop()
    const recent = await recentErrors(p)
    const inFlightOnA = outcomes.filter(o => o.at < tTerm && o.at + o.ms > tTerm && o.instance?.endsWith(`@${a.peer}`))
    const after = summarize(outcomes, tTerm)
    t.diagnostic(
      `allocator SIGTERM: exit ${code} ${Math.round(tExit - tTerm)} ms after the signal; ${inFlightOnA.length} request(s) in flight on it completed there; from the signal on ${describeLoad(after)}`
    )
    assert.equal(code, 0, a.d.stderr())
    assert.equal(after.failed, 0, `none lost: ${describeLoad(after)}; ${recent}`)
    assert.equal(summarize(outcomes).failed, 0)
    assert.ok(
      outcomes.some(o => o.at > tExit && o.instance?.endsWith(`@${b.peer}`)),
      'served by B after A left'
    )
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
