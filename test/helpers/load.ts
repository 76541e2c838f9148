// A closed-loop load generator for the fault and load suites: N clients, each on its
// own keep-alive connection (undici Client), each sending its next GET as soon as the
// last one is answered. Every outcome is kept with its time, so that a test can judge
// the window around a fault and report latency percentiles.
import { Client } from 'undici'

export interface Outcome {
  /** When the request was sent (ms since the load started). */
  at: number
  ms: number
  /** HTTP status, or 0 when no response came. */
  status: number
  /** An error code (undici's or the system's), or the proxy's error code on a 5xx. */
  error?: string
  /** Whether the client had sent anything on its connection before (a reused keep-alive connection). */
  reused: boolean
  /** x-physarum-instance of the answer: instance@host peer. */
  instance?: string
  /** The error message of a failed answer. */
  detail?: string
}

export interface LoadOptions {
  /** http://host:port of the proxy; a function lets a test move the load. */
  origin: string
  /** Path, or a function of the client number and its request count. */
  path: string | ((client: number, n: number) => string)
  concurrency: number
  /** Stop by itself after this long (a test may stop it earlier). */
  durationMs: number
  /** Per-request bound on the wait for headers and body. */
  timeoutMs?: number
  /** Pause after a failed request, so that a client does not spin against a closed port. */
  backoffMs?: number
}

export interface Summary {
  total: number
  ok: number
  failed: number
  okRate: number
  rps: number
  p50: number
  p99: number
  max: number
  errors: Record<string, number>
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Counts and latency of the outcomes sent within [from, to) (ms since start). */
export function summarize(outcomes: Outcome[], from = 0, to = Infinity): Summary {
  const win = outcomes.filter(o => o.at >= from && o.at < to)
  const ok = win.filter(o => o.status === 200)
  const lat = ok.map(o => o.ms).sort((a, b) => a - b)
  const errors: Record<string, number> = {}
  for (const o of win)
    if (o.status !== 200) {
      const k = o.error ?? String(o.status)
      errors[k] = (errors[k] ?? 0) + 1
    }
  // A loop, not Math.max(...): a minute of load is more outcomes than a call takes arguments.
  let first = Infinity
  let last = -Infinity
  for (const o of win) {
    first = Math.min(first, o.at)
    last = Math.max(last, o.at + o.ms)
  }
  const span = win.length > 0 ? (last - first) / 1000 : 0
  return {
    total: win.length,
    ok: ok.length,
    failed: win.length - ok.length,
    okRate: win.length === 0 ? NaN : ok.length / win.length,
    rps: span > 0 ? Math.round(win.length / span) : 0,
    p50: Number(percentile(lat, 50).toFixed(2)),
    p99: Number(percentile(lat, 99).toFixed(2)),
    max: Number((lat[lat.length - 1] ?? NaN).toFixed(2)),
    errors
  }
}

/** The distinct error messages of failed answers, most frequent first (for a failure message). */
export function details(outcomes: Outcome[], max = 3): string {
  const n = new Map<string, number>()
  for (const o of outcomes) if (o.detail !== undefined) n.set(o.detail, (n.get(o.detail) ?? 0) + 1)
  return [...n]
    .sort((a, b) => b[1] - a[1])
    .slice(0, max)
    .map(([d, k]) => `${k}× ${d}`)
    .join(' | ')
}

export function describe(s: Summary): string {
  const errs = Object.entries(s.errors)
    .map(([k, v]) => `${k}×${v}`)
    .join(', ')
  return `${s.ok}/${s.total} ok (${(100 * s.okRate).toFixed(3)} %), ${s.rps} req/s, p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms${errs !== '' ? `; failures: ${errs}` : ''}`
}

export class Load {
  readonly outcomes: Outcome[] = []
  readonly t0 = performance.now()
  private stopped = false
  private readonly done: Promise<void>
  private readonly clients: Client[] = []

  constructor(private readonly opts: LoadOptions) {
    const deadline = this.t0 + opts.durationMs
    this.done = Promise.all(
      Array.from({ length: opts.concurrency }, async (_x, i) => {
        await this.client(i, deadline)
      })
    ).then(() => {})
  }

  /** Milliseconds since the load started. */
  now(): number {
    return performance.now() - this.t0
  }

  private async client(i: number, deadline: number): Promise<void> {
    const timeoutMs = this.opts.timeoutMs ?? 30000
    const make = (): Client => {
      const c = new Client(this.opts.origin, {
        pipelining: 1,
        keepAliveTimeout: 60000,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        connectTimeout: 5000
      })
      this.clients.push(c)
      return c
    }
    let client = make()
    let used = false
    for (let n = 0; !this.stopped && performance.now() < deadline; n++) {
      const path = typeof this.opts.path === 'string' ? this.opts.path : this.opts.path(i, n)
      const start = performance.now()
      const o: Outcome = { at: start - this.t0, ms: 0, status: 0, reused: used }
      try {
        const r = await client.request({ method: 'GET', path })
        o.status = r.statusCode
        if (typeof r.headers['x-physarum-instance'] === 'string') o.instance = r.headers['x-physarum-instance']
        if (r.statusCode === 200) await r.body.dump()
        else {
          const body = (await r.body.json().catch(() => undefined)) as
            { error?: { code?: string; message?: string } } | undefined
          o.error = `${r.statusCode} ${String(r.headers['x-physarum-error'] ?? body?.error?.code ?? '')}`.trim()
          o.detail = body?.error?.message
        }
        used = true
      } catch (err) {
        o.status = 0
        o.error = (err as { code?: string }).code ?? (err as Error).name
        // A fresh connection for the next request, as a browser or curl would do.
        await client.destroy().catch(() => {})
        client = make()
        used = false
      }
      o.ms = performance.now() - start
      this.outcomes.push(o)
      if (o.status !== 200) await new Promise(resolve => setTimeout(resolve, this.opts.backoffMs ?? 20))
    }
  }

  /** Stops every client after its current request and resolves with the outcomes. */
  async stop(): Promise<Outcome[]> {
    this.stopped = true
    await this.done
    await Promise.all(
      this.clients.map(async c => {
        await c.close().catch(() => {})
      })
    )
    return this.outcomes
  }

  /** Resolves when the load has run its course by itself. */
  async finished(): Promise<Outcome[]> {
    await this.done
    return await this.stop()
  }
}
