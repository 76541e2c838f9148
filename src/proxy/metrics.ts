// The proxy's Prometheus metrics, in the agent's registry: requests and their latency, cold
// starts, allocations asked for, retries and ejections, by app. The three a request updates
// (requests, latency, forwards) are counted in plain numbers per label set, bound once, and
// read out on each scrape: prom-client's own update checks and hashes the labels every time
// (~5 µs of a fast-path request's ~120 µs of JavaScript in a CPU profile).
import { Counter, Gauge, type LabelValues, type Metric, type Registry } from 'prom-client'

/**
 * A counter whose hot updates are plain additions on a bound series (`series(...)`, kept), added to the prom-client
 * counter in its collect hook, which runs before every read of it (a scrape, `get()`): what it shows is exact.
 */
export class BatchedCounter<T extends string> {
  readonly counter: Counter<T>
  private readonly pending: Array<{ labels: LabelValues<T>; n: number }> = []

  constructor(config: { name: string; help: string; labelNames: readonly T[]; registers: Registry[] }) {
    const pending = this.pending
    this.counter = new Counter<T>({
      ...config,
      collect() {
        for (const p of pending)
          if (p.n > 0) {
            this.inc(p.labels, p.n)
            p.n = 0
          }
      }
    })
  }

  /** A series to add to (`s.n++`): keep it, one per label set. */
  series(labels: LabelValues<T>): { n: number } {
    const p = { labels, n: 0 }
    this.pending.push(p)
    return p
  }
}

/** One app's series of a LatencyHistogram. */
export interface HistogramSeries {
  observe: (value: number) => void
}

/**
 * A histogram with one label whose series are plain arrays of bucket counts: an observation is a scan of the bounds and
 * two additions. The registry renders it like prom-client's own Histogram (it reads any metric by `get()`).
 */
export class LatencyHistogram<L extends string> {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>()

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: L,
    private readonly bounds: readonly number[],
    registry: Registry
  ) {
    registry.registerMetric(this as unknown as Metric)
  }

  /** The series of one label value (made once, kept). */
  child(value: string): HistogramSeries {
    let s = this.series.get(value)
    if (s === undefined) {
      s = { counts: new Float64Array(this.bounds.length), sum: 0, count: 0 }
      this.series.set(value, s)
    }
    const series = s
    const bounds = this.bounds
    return {
      observe: (v: number): void => {
        series.sum += v
        series.count++
        for (let i = 0; i < bounds.length; i++)
          if (v <= bounds[i]) {
            series.counts[i]++
            return
          }
      }
    }
  }

  observe(labels: Record<L, string>, v: number): void {
    this.child(labels[this.label]).observe(v)
  }

  reset(): void {
    this.series.clear()
  }

  /** prom-client's form: per series the cumulative buckets, +Inf, _sum and _count. */
  async get(): Promise<{
    name: string
    help: string
    type: 'histogram'
    aggregator: 'sum'
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>
  }> {
    const values = []
    for (const [value, s] of this.series) {
      let acc = 0
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]
        values.push({
          labels: { le: this.bounds[i], [this.label]: value },
          value: acc,
          metricName: `${this.name}_bucket`
        })
      }
      values.push({ labels: { le: '+Inf', [this.label]: value }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { [this.label]: value }, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { [this.label]: value }, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

interface AppMeters {
  latency: HistogramSeries
  statuses: Map<number, { n: number }>
  forwards: { loopback: { n: number }; libp2p: { n: number } }
}

/** What a request updates, bound per app (and status) once: plain additions on the hot path. */
export class RequestMeters {
  private readonly byApp = new Map<string, AppMeters>()

  constructor(
    private readonly requests: BatchedCounter<'app' | 'status'>,
    private readonly latency: LatencyHistogram<'app'>,
    private readonly forwards: BatchedCounter<'app' | 'path'>
  ) {}

  private of(app: string): AppMeters {
    let m = this.byApp.get(app)
    if (m === undefined) {
      m = {
        latency: this.latency.child(app),
        statuses: new Map(),
        forwards: {
          loopback: this.forwards.series({ app, path: 'loopback' }),
          libp2p: this.forwards.series({ app, path: 'libp2p' })
        }
      }
      this.byApp.set(app, m)
    }
    return m
  }

  response(app: string, status: number, seconds: number): void {
    const m = this.of(app)
    let s = m.statuses.get(status)
    if (s === undefined) {
      s = this.requests.series({ app, status: String(status) })
      m.statuses.set(status, s)
    }
    s.n++
    m.latency.observe(seconds)
  }

  forward(app: string, path: 'loopback' | 'libp2p'): void {
    this.of(app).forwards[path].n++
  }
}

export function proxyMetrics(reg: Registry) {
  const requestCount = new BatchedCounter({
    name: 'physarum_proxy_requests_total',
    help: 'Requests through this proxy, by app and status.',
    labelNames: ['app', 'status'],
    registers: [reg]
  })
  const latency = new LatencyHistogram(
    'physarum_proxy_request_seconds',
    'Time to serve a request through this proxy, by app.',
    'app',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    reg
  )
  const forwards = new BatchedCounter({
    name: 'physarum_proxy_forwards_total',
    help: "Requests (each try) sent on to an instance, by app and path: loopback (straight to an instance on this host: the proxy's own, or a same-host allocator's by the local fast path) or libp2p.",
    labelNames: ['app', 'path'],
    registers: [reg]
  })
  return {
    /** Requests' counts by status, their latency and their forwards by path. */
    requests: new RequestMeters(requestCount, latency, forwards),
    upgraded: new Gauge({
      name: 'physarum_proxy_upgraded_connections',
      help: 'Upgraded connections (WebSockets) open through this proxy, by app.',
      labelNames: ['app'],
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
