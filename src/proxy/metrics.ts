// The proxy's Prometheus metrics, in the agent's registry: requests and their latency, cold
// starts, allocations asked for, retries and ejections, by app.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

export function proxyMetrics(reg: Registry) {
  return {
    upgraded: new Gauge({
      name: 'physarum_proxy_upgraded_connections',
      help: 'Upgraded connections (WebSockets) open through this proxy, by app.',
      labelNames: ['app'],
      registers: [reg]
    }),
    requestCount: new Counter({
      name: 'physarum_proxy_requests_total',
      help: 'Requests through this proxy, by app and status.',
      labelNames: ['app', 'status'],
      registers: [reg]
    }),
    latency: new Histogram({
      name: 'physarum_proxy_request_seconds',
      help: 'Time to serve a request through this proxy, by app.',
      labelNames: ['app'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [reg]
    }),
    coldStarts: new Counter({
      name: 'physarum_proxy_cold_starts_total',
      help: 'Requests that found no instance within HardReq and waited for one.',
      labelNames: ['app'],
      registers: [reg]
    }),
    allocations: new Counter({
      name: 'physarum_proxy_allocations_total',
      help: 'Allocation requests sent, by app and result.',
      labelNames: ['app', 'result'],
      registers: [reg]
    }),
    forwards: new Counter({
      name: 'physarum_proxy_forwards_total',
      help: "Requests (each try) sent on to an instance, by app and path: loopback (straight to an instance on this host: the proxy's own, or a same-host allocator's by the local fast path) or libp2p.",
      labelNames: ['app', 'path'],
      registers: [reg]
    }),
    retries: new Counter({
      name: 'physarum_proxy_retries_total',
      help: 'Requests retried on another instance.',
      labelNames: ['app'],
      registers: [reg]
    }),
    ejections: new Counter({
      name: 'physarum_proxy_ejections_total',
      help: 'Instances ejected after repeated failures.',
      labelNames: ['app'],
      registers: [reg]
    })
  }
}
