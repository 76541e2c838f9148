// The allocator's Prometheus metrics, in the agent's registry: allocations answered and
// their time, requests served for hosted instances, culls, and instances by state.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { InstanceManager } from './instances/manager.js'

export function allocatorMetrics(reg: Registry) {
  return {
    upgraded: new Gauge({
      name: 'physarum_upgraded_connections',
      help: 'Upgraded connections (WebSockets) open to hosted instances, by app.',
      labelNames: ['app'],
      registers: [reg]
    }),
    allocations: new Counter({
      name: 'physarum_allocations_total',
      help: 'Allocation requests answered, by app and result (ok or an error code).',
      labelNames: ['app', 'result'],
      registers: [reg]
    }),
    allocSeconds: new Histogram({
      name: 'physarum_allocation_seconds',
      help: 'Time from an allocation request to its answer.',
      labelNames: ['app', 'result'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [reg]
    }),
    forwarded: new Counter({
      name: 'physarum_forwarded_requests_total',
      help: 'Requests served for hosted instances, by app and status.',
      labelNames: ['app', 'status'],
      registers: [reg]
    }),
    culls: new Counter({
      name: 'physarum_culls_total',
      help: 'Instances removed by the allocator, by app and reason (idle, unhealthy).',
      labelNames: ['app', 'reason'],
      registers: [reg]
    })
  }
}

/** Instances by app and state, counted at scrape time. */
export function instancesGauge(reg: Registry, manager: InstanceManager): void {
  new Gauge({
    name: 'physarum_instances',
    help: 'Instances on this allocator, by app and state.',
    labelNames: ['app', 'state'],
    registers: [reg],
    collect() {
      this.reset()
      for (const i of manager.instances.values()) this.inc({ app: i.app, state: i.state })
    }
  })
}
