// Precise round-trip times per peer: 16-byte probes echoed over one long-lived stream
// per peer, timed with the monotonic hrtime clock (libp2p's ping reports whole
// milliseconds). A peer's RTT is the median of its recent samples, cached with its age.
import { Uint8ArrayList } from 'uint8arraylist'
import type { PeerId, Stream, Connection, Startable } from '@libp2p/interface'
import type { PhysarumNode } from './node.js'
import { debugOn, type Logger } from '../util/log.js'

import { LATE_MS, MEASURE_SAMPLES, PROBE_BYTES, PROBE_TIMEOUT_MS, RTT_STREAMS, RTT_WINDOW } from './constants.js'

export const RTT_PROTOCOL = '/physarum/rtt/1.0.0'

export interface RttInit {
  /** Samples kept per peer; the median of these is the peer's RTT. */
  window?: number
  /** Timeout of one probe (ms). */
  probeTimeoutMs?: number
  /** Called with every successful sample (ms), e.g. for a histogram. */
  onSample?: (ms: number) => void
}

export interface RttEstimate {
  /** Median of the recent samples, in milliseconds (fractional). */
  ms: number
  samples: number
  /** When the last sample was taken (epoch ms). */
  measuredAt: number
}

export class RttTimeoutError extends Error {
  override name = 'RttTimeoutError'
}

interface Pending {
  resolve: (ms: number) => void
  reject: (err: Error) => void
  sent: bigint
  timer: NodeJS.Timeout
}

/** One probe channel: a stream on which our probes come back echoed. */
class Channel {
  private seq = 0n
  private readonly pending = new Map<bigint, Pending>()
  private readonly buf = new Uint8ArrayList()
  closed = false

  constructor(readonly stream: Stream) {
    void this.read()
  }

  private async read(): Promise<void> {
    try {
      for await (const chunk of this.stream) {
        this.buf.append(chunk)
        while (this.buf.byteLength >= PROBE_BYTES) {
          const frame = this.buf.subarray(0, PROBE_BYTES)
          this.buf.consume(PROBE_BYTES)
          const seq = new DataView(frame.buffer, frame.byteOffset, PROBE_BYTES).getBigUint64(0)
          const p = this.pending.get(seq)
          if (p !== undefined) {
            this.pending.delete(seq)
            clearTimeout(p.timer)
            p.resolve(Number(process.hrtime.bigint() - p.sent) / 1e6)
          }
        }
      }
    } catch {}
    this.fail(new Error('rtt stream closed'))
  }

  fail(err: Error): void {
    this.closed = true
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.pending.clear()
  }

  probe(timeoutMs: number): Promise<number> {
    if (this.closed) return Promise.reject(new Error('rtt stream closed'))
    const seq = ++this.seq
    const frame = new Uint8Array(PROBE_BYTES)
    new DataView(frame.buffer).setBigUint64(0, seq)
    return new Promise<number>((resolve, reject) => {
      const due = performance.now() + timeoutMs
      let extended = false
      const expire = (): void => {
        const p = this.pending.get(seq)
        if (p === undefined) return
        // This node's own event loop was late (a busy process): that lag is no evidence against
        // the peer, so the wait is extended by it, once (Lifeguard's local health awareness).
        const late = performance.now() - due
        if (!extended && late > LATE_MS) {
          extended = true
          p.timer = setTimeout(expire, Math.min(late, timeoutMs))
          return
        }
        // Timers run before I/O in an event-loop turn: an answer already waiting in the socket is
        // read first, and only then is the probe given up.
        setImmediate(() => {
          if (!this.pending.has(seq)) return
          this.pending.delete(seq)
          reject(new RttTimeoutError(`no answer within ${timeoutMs} ms`))
        })
      }
      this.pending.set(seq, { resolve, reject, sent: process.hrtime.bigint(), timer: setTimeout(expire, timeoutMs) })
      this.stream.send(frame)
    })
  }
}

export class RttService implements Startable {
  private readonly channels = new Map<string, Promise<Channel>>()
  /** Recent samples per peer, with their median kept up to date: lookups are on the request path. */
  private readonly samples = new Map<string, { values: number[]; measuredAt: number; median: number }>()
  private readonly window: number
  private readonly probeTimeoutMs: number
  /** Called when a peer's probe arrives. */
  onInbound?: (peer: string) => void

  constructor(
    private readonly components: { node: PhysarumNode; log: Logger },
    private readonly init: RttInit = {}
  ) {
    this.window = init.window ?? RTT_WINDOW
    this.probeTimeoutMs = init.probeTimeoutMs ?? PROBE_TIMEOUT_MS
  }

  async start(): Promise<void> {
    await this.components.node.handle(
      RTT_PROTOCOL,
      async (stream: Stream, connection: Connection) => {
        // Echo server: send back whatever arrives, respecting backpressure. A peer that
        // probes us is evidently alive: tell whoever listens (membership).
        const peer = connection.remotePeer.toString()
        try {
          for await (const chunk of stream) {
            this.onInbound?.(peer)
            if (!stream.send(chunk)) await stream.onDrain()
          }
          await stream.close()
        } catch (err) {
          stream.abort(err as Error)
        }
      },
      { maxInboundStreams: RTT_STREAMS, maxOutboundStreams: RTT_STREAMS }
    )
  }

  async stop(): Promise<void> {
    await this.components.node
      .unhandle(RTT_PROTOCOL)
      .catch(debugOn(this.components.log, 'unhandle of the RTT protocol'))
    for (const ch of this.channels.values())
      void ch.then(
        c => {
          c.fail(new Error('stopped'))
          c.stream.abort(new Error('stopped'))
        },
        () => {}
      )
    this.channels.clear()
  }

  private channel(peer: PeerId, signal: AbortSignal): Promise<Channel> {
    const key = peer.toString()
    let ch = this.channels.get(key)
    if (ch === undefined) {
      ch = this.components.node.dialProtocol(peer, RTT_PROTOCOL, { signal }).then(s => new Channel(s))
      this.channels.set(key, ch)
      ch.catch(() => {
        if (this.channels.get(key) === ch) this.channels.delete(key)
      })
    }
    return ch.then(c => {
      if (c.closed) {
        if (this.channels.get(key) === ch) this.channels.delete(key)
        return this.channel(peer, signal)
      }
      return c
    })
  }

  /** One sample; updates the cache. Rejects on timeout or when the peer is unreachable. */
  async probe(peer: PeerId, timeoutMs = this.probeTimeoutMs): Promise<number> {
    const signal = AbortSignal.timeout(timeoutMs)
    const started = Date.now()
    let ch: Channel
    try {
      ch = await this.channel(peer, signal)
    } catch (err) {
      if (signal.aborted) throw new RttTimeoutError(`no stream within ${timeoutMs} ms`)
      throw err
    }
    const left = Math.max(1, timeoutMs - (Date.now() - started))
    try {
      const ms = await ch.probe(left)
      this.record(peer.toString(), ms)
      return ms
    } catch (err) {
      if (!(err instanceof RttTimeoutError)) {
        const key = peer.toString()
        this.channels.delete(key)
      }
      throw err
    }
  }

  /** Several samples in a row; resolves with the updated estimate. */
  async measure(peer: PeerId, opts: { samples?: number; timeoutMs?: number } = {}): Promise<RttEstimate> {
    const n = opts.samples ?? MEASURE_SAMPLES
    for (let i = 0; i < n; i++) await this.probe(peer, opts.timeoutMs)
    return this.get(peer.toString()) as RttEstimate
  }

  /** Measures many peers in parallel, each bounded by its own timeout; failures are left out. */
  async measureMany(
    peers: PeerId[],
    opts: { samples?: number; timeoutMs?: number } = {}
  ): Promise<Map<string, RttEstimate>> {
    const out = new Map<string, RttEstimate>()
    await Promise.all(
      peers.map(async p => {
        try {
          out.set(p.toString(), await this.measure(p, opts))
        } catch {}
      })
    )
    return out
  }

  /** A sample taken elsewhere (the failure detector's probe and its answer), kept like one of ours. */
  observe(peer: string, ms: number): void {
    this.record(peer, ms)
  }

  private record(key: string, ms: number): void {
    let s = this.samples.get(key)
    if (s === undefined) {
      s = { values: [], measuredAt: 0, median: ms }
      this.samples.set(key, s)
    }
    s.values.push(ms)
    if (s.values.length > this.window) s.values.shift()
    s.measuredAt = Date.now()
    s.median = median(s.values)
    this.init.onSample?.(ms)
  }

  /** The cached estimate for a peer, or undefined when never measured. */
  get(peer: string): RttEstimate | undefined {
    const s = this.samples.get(peer)
    if (s === undefined) return undefined
    return { ms: s.median, samples: s.values.length, measuredAt: s.measuredAt }
  }

  /** Peers ordered nearest first; unmeasured peers last, in their given order. */
  rank(peers: string[]): Array<{ peer: string; rtt?: RttEstimate }> {
    return peers
      .map((peer, i) => ({ peer, rtt: this.get(peer), i }))
      .sort((a, b) => (a.rtt?.ms ?? Infinity) - (b.rtt?.ms ?? Infinity) || a.i - b.i)
      .map(({ peer, rtt }) => ({ peer, rtt }))
  }

  forget(peer: string): void {
    this.samples.delete(peer)
    const ch = this.channels.get(peer)
    this.channels.delete(peer)
    void ch?.then(
      c => {
        c.fail(new Error('forgotten'))
        c.stream.abort(new Error('forgotten'))
      },
      () => {}
    )
  }

  /** Drops the probe channel of a peer whose connection closed. */
  onDisconnect(peer: string): void {
    const ch = this.channels.get(peer)
    this.channels.delete(peer)
    void ch?.then(
      c => c.fail(new Error('disconnected')),
      () => {}
    )
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
