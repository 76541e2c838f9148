// Allocation benchmark: request → ready instance (and → first response through the
// forwarding hop), cold every time, for the process and Docker runtimes side by side.
import '../src/util/polyfill.js'
import { AllocatorDaemon } from '../src/allocator/daemon.js'
import { Agent } from '../src/cluster/agent.js'
import { builtinDefaults } from '../src/config/defaults.js'
import { silentLogger } from '../src/util/log.js'
import { requestAllocation } from '../src/allocation/protocol.js'
import { ForwardClient } from '../src/forward/client.js'
import type { Config } from '../src/config/schema.js'
import { dockerReady, buildTestImage, TEST_IMAGE } from '../test/helpers/docker.js'
import { HELLO_COMMAND } from '../test/helpers/cluster.js'
import { fmt, machine, median, percentile, saveResult } from './lib.js'
import { setTimeout as sleep } from 'node:timers/promises'

const RUNS = Number(process.env.BENCH_ALLOC_RUNS ?? 20)

async function measure(runtime: 'process' | 'docker'): Promise<{ ready: number[]; firstResponse: number[] }> {
  const d = builtinDefaults()
  const app =
    runtime === 'process'
      ? { Command: HELLO_COMMAND, Health: { Path: '/healthz' }, Port: 8080 }
      : { Image: TEST_IMAGE, Health: { Path: '/healthz' }, Port: 8080 }
  const config: Config = {
    ...d,
    Listen: ['/ip4/127.0.0.1/tcp/0'],
    Psk: 'physarum allocation benchmark',
    Apps: { app: { ...app, IdleTimeoutS: 3600, MaxInstances: 2 } },
    Allocator: { ...d.Allocator, Runtime: runtime, RateLimit: { PerSecond: 1000, Burst: 1000 } }
  }
  const alloc = await AllocatorDaemon.start({ config, log: silentLogger, ephemeral: true, admin: false })
  const client = await Agent.start({
    role: 'proxy',
    config: { ...config, Apps: {}, Bootstraps: [alloc.agent.node.getMultiaddrs()[0].toString()] },
    log: silentLogger,
    ephemeral: true,
    admin: false
  })
  const fwd = new ForwardClient(client.node)
  const ready: number[] = []
  const firstResponse: number[] = []
  try {
    while (client.membership.table.get(alloc.agent.peer) === undefined) await sleep(20)
    for (let i = 0; i < RUNS + 1; i++) {
      const t0 = process.hrtime.bigint()
      const inst = await requestAllocation(client.node, alloc.agent.node.peerId, 'app', { fresh: true })
      const t1 = process.hrtime.bigint()
      const r = await fwd.request(
        alloc.agent.node.peerId,
        { v: 1, app: 'app', instance: inst.id },
        { method: 'GET', path: '/healthz' }
      )
      await r.body.dump()
      const t2 = process.hrtime.bigint()
      if (i > 0) {
        // the first run warms up code paths; it is not counted
        ready.push(Number(t1 - t0) / 1e6)
        firstResponse.push(Number(t2 - t0) / 1e6)
      }
      const m = alloc.manager.instances.get(inst.id)
      if (m !== undefined) await alloc.manager.remove(m, 'benchmark')
    }
  } finally {
    await fwd.stop()
    await client.stop()
    await alloc.stop()
  }
  return { ready, firstResponse }
}

export async function run(): Promise<void> {
  const rows: string[] = []
  const data: Record<string, unknown> = {}
  for (const runtime of ['process', 'docker'] as const) {
    if (runtime === 'docker') {
      if (!dockerReady()) {
        rows.push('| docker | no engine answered | | | |')
        continue
      }
      buildTestImage()
    }
    const r = await measure(runtime)
    data[runtime] = r
    rows.push(
      `| ${runtime} | ${fmt(median(r.ready))} | ${fmt(percentile(r.ready, 95))} | ${fmt(median(r.firstResponse))} | ${fmt(percentile(r.firstResponse, 95))} |`
    )
    process.stderr.write(`${rows[rows.length - 1]}\n`)
  }
  const markdown = `Allocation request → instance ready (the allocator answers only after the readiness check passes), and → first response through the forwarding hop; ${RUNS} cold starts per runtime (after one warm-up), client and allocator on 127.0.0.1 with a PSK. Process runtime: the bundled hello-world-server (a Node.js process); Docker: a local busybox httpd image (create + start + publish a port + readiness).

| runtime | ready, median (ms) | ready, p95 (ms) | first response, median (ms) | first response, p95 (ms) |
|---|---|---|---|---|
${rows.join('\n')}

For reference, the PhysarumSM paper reports a median of 1.58 s for allocation and 2.17 s end to end. Target: ≤ 500 ms median with a local image.`
  saveResult('allocation', {
    title: 'Allocation: request → ready',
    ranAt: new Date().toISOString(),
    machine: machine(),
    markdown,
    data
  })
  process.stdout.write(markdown + '\n')
}
