// Client side of forwarding: an undici pool per (host peer, app, instance) whose
// connections are libp2p streams that begin with the header frame. Streams are kept
// alive and reused, so a warm request pays no stream negotiation.
import { Pool, type Dispatcher } from 'undici'
import { lpStream } from '@libp2p/utils'
import type { PeerId } from '@libp2p/interface'
import type { Socket } from 'node:net'
import type { PhysarumNode } from '../node/node.js'
import { HTTP_PROTOCOL, MAX_HEADER_FRAME, type HeaderFrame } from './protocol.js'
import { streamToDuplex } from './duplex.js'

/** The instance host could not be reached: nothing of the request was sent. */
export class ConnectError extends Error {
  override name = 'ConnectError'
  readonly code = 'PHYSARUM_CONNECT'
  constructor (peer: string, cause: Error) { super(`cannot open a stream to ${peer}: ${cause.message}`) }
}

export class ForwardClient {
  private readonly pools = new Map<string, Pool>()

  constructor (private readonly node: PhysarumNode, private readonly opts: { connections?: number, connectTimeoutMs?: number } = {}) {}

  /** Opens a forwarding stream and sends the header frame. */
  async open (peer: PeerId, frame: HeaderFrame, signal?: AbortSignal): Promise<ReturnType<typeof streamToDuplex>> {
    const stream = await this.node.dialProtocol(peer, HTTP_PROTOCOL, { signal: signal ?? AbortSignal.timeout(this.opts.connectTimeoutMs ?? 10000) })
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER_FRAME })
    await lp.write(new TextEncoder().encode(JSON.stringify(frame)))
    return streamToDuplex(lp.unwrap())
  }

  pool (peer: PeerId, frame: HeaderFrame): Pool {
    const key = `${peer.toString()}/${frame.app}/${frame.instance ?? ''}`
    let p = this.pools.get(key)
    if (p === undefined) {
      p = new Pool(`http://${frame.app}.physarum`, {
        connections: this.opts.connections ?? 128,
        keepAliveTimeout: 60000,
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: (_opts, cb) => {
          this.open(peer, frame).then(s => { cb(null, s as unknown as Socket) }, (err: Error) => { cb(new ConnectError(peer.toString(), err), null) })
        }
      })
      this.pools.set(key, p)
    }
    return p
  }

  async request (peer: PeerId, frame: HeaderFrame, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    return await this.pool(peer, frame).request(opts)
  }

  /** Drops the pool of an endpoint that is gone. */
  forget (peer: string, frame: HeaderFrame): void {
    const key = `${peer}/${frame.app}/${frame.instance ?? ''}`
    const p = this.pools.get(key)
    this.pools.delete(key)
    void p?.destroy().catch(() => {})
  }

  async close (): Promise<void> {
    await Promise.all([...this.pools.values()].map(async p => { await p.destroy().catch(() => {}) }))
    this.pools.clear()
  }
}
