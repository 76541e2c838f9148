// Client side of forwarding: an undici pool per (host peer, app, instance) whose
// connections are libp2p streams that begin with the header frame. Streams are kept
// alive and reused, so a warm request pays no stream negotiation.
import { Pool, type Dispatcher } from 'undici'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { PeerId, Startable, Stream } from '@libp2p/interface'
import type { Socket } from 'node:net'
import type { PhysarumNode } from '../cluster/node.js'
import { debugOn, silentLogger, type Logger } from '../util/log.js'
import { HTTP_PROTOCOL, MAX_HEADER_FRAME, instanceKey, type HeaderFrame } from './protocol.js'
import { CONNECT_TIMEOUT_MS, MAX_STREAMS, STREAMS_PER_INSTANCE, STREAM_KEEPALIVE_MS } from './constants.js'
import { streamToDuplex } from './duplex.js'
import { H2Sessions } from './h2.js'
import { CallSession } from './calls.js'
import type { ClientHttp2Session } from 'node:http2'

/** The host closed a stream whose frame said proto calls before its HELLO: it does not speak them. */
class NoCalls extends Error {
  override name = 'NoCalls'
}

/** The instance host could not be reached: nothing of the request was sent. */
export class ConnectError extends Error {
  override name = 'ConnectError'
  readonly code = 'PHYSARUM_CONNECT'
  constructor(peer: string, cause: Error) {
    super(`cannot open a stream to ${peer}: ${cause.message}`)
  }
}

export class ForwardClient implements Startable {
  private readonly pools = new Map<string, Pool>()
  /** HTTP/2 sessions (h2c and gRPC apps), one per instance, over a stream whose frame says proto h2. */
  private readonly h2 = new H2Sessions()
  /** Sessions of calls (h2c and gRPC apps), one per instance, over a stream whose frame says proto calls. */
  private readonly calls = new Map<string, Promise<CallSession>>()
  /** Hosts that closed a stream whose frame said proto calls (an older version): HTTP/2 goes to them. */
  private readonly h2Hosts = new Set<string>()
  private readonly callError: (message: string) => void
  /** Stream opens in progress, per host peer. */
  private readonly opening = new Map<string, Set<AbortController>>()

  private readonly closeFailed: (err: unknown) => void

  constructor(
    private readonly node: PhysarumNode,
    private readonly opts: { connections?: number; connectTimeoutMs?: number; log?: Logger } = {}
  ) {
    this.closeFailed = debugOn(opts.log ?? silentLogger, 'close of a forwarding pool')
    const log = opts.log ?? silentLogger
    this.callError = message => {
      log.debug('call stream failed', { error: message })
    }
  }

  start(): void {}

  /** Opens a forwarding stream and sends the header frame. */
  async open(peer: PeerId, frame: HeaderFrame, signal?: AbortSignal): Promise<ReturnType<typeof streamToDuplex>> {
    return streamToDuplex(await this.openStream(peer, frame, signal))
  }

  /** A forwarding stream with its header frame sent, as libp2p's stream. */
  private async openStream(peer: PeerId, frame: HeaderFrame, signal?: AbortSignal): Promise<Stream> {
    // libp2p allows 64 outbound streams of a protocol per connection unless told otherwise: one
    // stream per request in flight, so that would cap a proxy at 64 concurrent requests per host.
    const stream = await this.node.dialProtocol(peer, HTTP_PROTOCOL, {
      signal: signal ?? AbortSignal.timeout(this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS),
      maxOutboundStreams: MAX_STREAMS
    })
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER_FRAME })
    try {
      await lp.write(new TextEncoder().encode(JSON.stringify(frame)), { signal })
    } catch (err) {
      // Nobody else holds the stream yet: without this it stayed open on both sides.
      stream.abort(err as Error)
      throw err
    }
    return lp.unwrap()
  }

  private key(peer: PeerId | string, frame: HeaderFrame): string {
    return instanceKey(peer.toString(), frame.app, frame.instance)
  }

  /** The pool of a target; a peer given as a string is parsed only when its pool is made. */
  pool(peer: PeerId | string, frame: HeaderFrame): Pool {
    const key = this.key(peer, frame)
    let p = this.pools.get(key)
    if (p === undefined) {
      const id = typeof peer === 'string' ? peerIdFromString(peer) : peer
      p = new Pool(`http://${frame.app}.physarum`, {
        connections: this.opts.connections ?? STREAMS_PER_INSTANCE,
        keepAliveTimeout: STREAM_KEEPALIVE_MS,
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: (_opts, cb) => {
          const host = id.toString()
          const ac = new AbortController()
          const opening = this.opening.get(host) ?? new Set()
          this.opening.set(host, opening)
          opening.add(ac)
          this.open(
            id,
            frame,
            AbortSignal.any([ac.signal, AbortSignal.timeout(this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS)])
          )
            .finally(() => {
              opening.delete(ac)
              if (opening.size === 0 && this.opening.get(host) === opening) this.opening.delete(host)
            })
            .then(
              s => {
                cb(null, s as unknown as Socket)
              },
              (err: Error) => {
                cb(new ConnectError(host, err), null)
              }
            )
        }
      })
      this.pools.set(key, p)
    }
    return p
  }

  /**
   * The session of calls to a target (an h2c or gRPC instance), opened on first use: over a stream in physarum's own
   * framing (proto 'calls', ./calls.ts), or HTTP/2 (proto 'h2') to a host of an older version, which refuses the
   * former's header frame.
   */
  async session(peer: string, frame: HeaderFrame, signal?: AbortSignal): Promise<CallSession | ClientHttp2Session> {
    if (this.h2Hosts.has(peer)) return await this.h2Session(peer, frame, signal)
    const key = this.key(peer, frame)
    const have = this.calls.get(key)
    if (have !== undefined) {
      const s = await have.catch(() => undefined)
      if (s !== undefined && !s.closed) return s
      if (this.calls.get(key) === have) this.calls.delete(key)
    }
    const p = this.openCalls(peer, frame, signal)
    this.calls.set(key, p)
    const drop = (): void => {
      if (this.calls.get(key) === p) this.calls.delete(key)
    }
    p.then(s => {
      s.once('close', drop)
      s.once('goaway', drop)
    }, drop)
    try {
      return await p
    } catch (err) {
      if (!(err instanceof NoCalls)) throw err
      this.h2Hosts.add(peer)
      return await this.h2Session(peer, frame, signal)
    }
  }

  private async openCalls(peer: string, frame: HeaderFrame, signal?: AbortSignal): Promise<CallSession> {
    let stream: Stream
    try {
      stream = await this.openStream(peerIdFromString(peer), { ...frame, proto: 'calls' }, signal)
    } catch (err) {
      throw new ConnectError(peer, err as Error)
    }
    const s = new CallSession(stream, 'client', this.callError)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy()
        reject(new ConnectError(peer, new Error('no answer to the header frame')))
      }, this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS)
      s.once('hello', () => {
        clearTimeout(timer)
        resolve()
      })
      s.once('close', () => {
        clearTimeout(timer)
        reject(new NoCalls())
      })
    })
    return s
  }

  /** The HTTP/2 session to a target over a stream whose header frame says proto h2. */
  private async h2Session(peer: string, frame: HeaderFrame, signal?: AbortSignal): Promise<ClientHttp2Session> {
    return await this.h2.get(this.key(peer, frame), `${frame.app}.physarum`, async () => {
      try {
        return await this.open(peerIdFromString(peer), { ...frame, proto: 'h2' }, signal)
      } catch (err) {
        throw new ConnectError(peer, err as Error)
      }
    })
  }

  async request(
    peer: PeerId | string,
    frame: HeaderFrame,
    opts: Dispatcher.RequestOptions
  ): Promise<Dispatcher.ResponseData> {
    return await this.pool(peer, frame).request(opts)
  }

  /**
   * Drops the pool of an endpoint that could not be reached. Closed, not destroyed: a stream
   * open that failed (timed out on a busy host, or aborted) says nothing of the requests in
   * flight on the pool's other streams, which finish.
   */
  forget(peer: PeerId | string, frame: HeaderFrame): void {
    const key = this.key(peer, frame)
    const p = this.pools.get(key)
    this.pools.delete(key)
    this.h2.forget(key)
    void this.calls.get(key)?.then(
      s => {
        s.close()
      },
      () => {}
    )
    this.calls.delete(key)
    void p?.close().catch(this.closeFailed)
  }

  /** Closes the pools of instances that are gone (`keep` says no); their requests in flight finish. */
  sweep(keep: (key: string) => boolean): void {
    this.h2.sweep(keep)
    for (const [key, p] of this.calls) {
      if (keep(key)) continue
      this.calls.delete(key)
      void p.then(
        s => {
          s.close()
        },
        () => {}
      )
    }
    for (const [key, p] of this.pools) {
      if (keep(key)) continue
      this.pools.delete(key)
      void p.close().catch(this.closeFailed)
    }
  }

  /** How many instances it holds a pool for. */
  get size(): number {
    return this.pools.size
  }

  /**
   * The host was declared failed: the stream opens waiting on it give up now (a frozen host
   * never answers them), and their requests, of which nothing was sent, go elsewhere.
   * Requests already sent keep waiting for their answers: the verdict may be wrong (a host
   * too busy to answer probes), and for a host that is really gone the request timeout ends them.
   */
  abortOpens(peer: string): void {
    for (const ac of this.opening.get(peer) ?? []) ac.abort(new Error(`host ${peer} was declared failed`))
  }

  /** Destroys every pool: what is still in flight fails (the entrypoint has drained by then). */
  async stop(): Promise<void> {
    this.h2.stop()
    for (const p of this.calls.values())
      void p.then(
        s => {
          s.destroy()
        },
        () => {}
      )
    this.calls.clear()
    await Promise.all(
      [...this.pools.values()].map(async p => {
        await p.destroy().catch(this.closeFailed)
      })
    )
    this.pools.clear()
  }
}
