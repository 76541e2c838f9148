// The proxy's per-request metrics, counted in bound plain series: a scrape shows what prom-client's own Counter and
// Histogram would show for the same requests, line for line, and every scrape is exact (nothing held back).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Histogram, Registry } from 'prom-client'
import { proxyMetrics } from '../../src/proxy/metrics.js'

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The lines of a scrape for one metric family (its HELP and TYPE lines included). */
const family = (text: string, name: string): string[] => text.split('\n').filter(l => l.includes(name))

test("requests, latency and forwards render as prom-client's own metrics would", async () => {
  const reg = new Registry()
  const m = proxyMetrics(reg)
  const ref = new Registry()
  const requests = new Counter({
    name: 'physarum_proxy_requests_total',
    help: 'Requests through this proxy, by app and status.',
    labelNames: ['app', 'status'],
    registers: [ref]
  })
  const latency = new Histogram({
    name: 'physarum_proxy_request_seconds',
    help: 'Time to serve a request through this proxy, by app.',
    labelNames: ['app'],
    buckets: BUCKETS,
    registers: [ref]
  })
  const forwards = new Counter({
    name: 'physarum_proxy_forwards_total',
    help: "Requests (each try) sent on to an instance, by app and path: loopback (straight to an instance on this host: the proxy's own, or a same-host allocator's by the local fast path) or libp2p.",
    labelNames: ['app', 'path'],
    registers: [ref]
  })
  const seen: Array<[string, number, number]> = [
    ['hello', 200, 0.0004],
    ['hello', 200, 0.003],
    ['hello', 503, 0.07],
    ['?', 404, 0],
    ['other', 200, 31],
    ['hello', 200, 0.001]
  ]
  for (const [app, status, s] of seen) {
    m.requests.response(app, status, s)
    requests.inc({ app, status: String(status) })
    latency.observe({ app }, s)
  }
  for (const [app, path] of [
    ['hello', 'loopback'],
    ['hello', 'loopback'],
    ['hello', 'libp2p'],
    ['other', 'libp2p']
  ] as const) {
    m.requests.forward(app, path)
    forwards.inc({ app, path })
  }
  const ours = await reg.metrics()
  const theirs = await ref.metrics()
  for (const name of [
    'physarum_proxy_requests_total',
    'physarum_proxy_request_seconds',
    'physarum_proxy_forwards_total'
  ])
    assert.deepEqual(family(ours, name).sort(), family(theirs, name).sort(), name)
  // A second scrape after more requests: counted since, added to what the first one showed.
  m.requests.response('hello', 200, 0.002)
  requests.inc({ app: 'hello', status: '200' })
  latency.observe({ app: 'hello' }, 0.002)
  const again = await reg.metrics()
  assert.match(again, /physarum_proxy_requests_total\{app="hello",status="200"\} 4\n/)
  assert.deepEqual(
    family(again, 'physarum_proxy_request_seconds').sort(),
    family(await ref.metrics(), 'physarum_proxy_request_seconds').sort()
  )
})
