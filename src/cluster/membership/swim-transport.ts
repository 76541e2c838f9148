// SWIM over libp2p: one stream per pair of members on /physarum/swim/1.0.0, used both
// ways (whoever opened it), carrying 4-byte-length-prefixed frames. Sending is
// fire-and-forget like SWIM's UDP: a frame to a member that cannot be reached is dropped
// and the failure detector's timers take it from there. A malformed frame resets the stream.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { PhysarumNode } from '../node.js'
import { debugOn, type Logger } from '../../util/log.js'
import { MAX_PENDING_FRAMES, MAX_SWIM_FRAME, SWIM_DIAL_TIMEOUT_MS } from './constants.js'
import { SWIM_PROTOCOL, decodeSwim, encodeSwim, type SwimMessage } from './swim-protocol.js'

/** SWIM streams per connection and direction: one in use, a few spare for a redial racing a close. */
const SWIM_STREAMS = 4

export interface SwimTransportInit {
  onMessage: (from: string, msg: SwimMessage) => void
  /** Where a member can be dialled when no connection to it is open. */
  addrsOf: (peer: string) => Multiaddr[]
  peerIdOf: (peer: string) => PeerId
  onMalformed?: (peer: string, reason: string) => void
}

class Channel {
  private readonly buf = new Uint8ArrayList()
  closed = false

  constructor(
    readonly peer: string,
    readonly stream: Stream,
    private readonly transport: SwimTransport
  ) {
    void this.read()
  }

  private async read(): Promise<void> {
    try {
      for await (const chunk of this.stream) {
        this.buf.append(chunk)
        this.transport.bytesIn += chunk.byteLength
        while (this.buf.byteLength >= 4) {
          const len = this.buf.getUint32(0)
          if (len > MAX_SWIM_FRAME) {
            this.transport.malformed(this, `frame of ${len} bytes > ${MAX_SWIM_FRAME}`)
            return
          }
          if (this.buf.byteLength < 4 + len) break
          const frame = this.buf.subarray(4, 4 + len)
          this.buf.consume(4 + len)
          const res = decodeSwim(frame)
          if (!res.ok) {
            this.transport.malformed(this, res.message)
            return
          }
          this.transport.deliver(this.peer, res.message)
        }
      }
    } catch {}
    this.closed = true
    this.transport.drop(this)
  }

  write(frame: Uint8Array): void {
    if (this.closed) return
    // One buffer, so one yamux frame, one noise message and one TCP segment per SWIM message, not two of each.
    const out = new Uint8Array(4 + frame.byteLength)
    new DataView(out.buffer).setUint32(0, frame.byteLength)
    out.set(frame, 4)
    try {
      this.stream.send(out)
      this.transport.bytesOut += 4 + frame.byteLength
    } catch {
      this.closed = true
      this.transport.drop(this)
    }
  }
}

export class SwimTransport implements Startable {
  private readonly channels = new Map<string, Channel>()
  private readonly opening = new Map<string, Uint8Array[]>()
  private started = false
  /** Bytes of SWIM frames (with their prefixes) sent and received, for metrics and benchmarks. */
  bytesOut = 0
  bytesIn = 0

  constructor(
    private readonly components: { node: PhysarumNode; log: Logger },
    private readonly init: SwimTransportInit
  ) {}

  async start(): Promise<void> {
    this.started = true
    await this.components.node.handle(
      SWIM_PROTOCOL,
      (stream: Stream, connection: Connection) => {
        const peer = connection.remotePeer.toString()
        const ch = new Channel(peer, stream, this)
        // The newest stream wins: the other side opened it because it had none (or lost its own).
        const old = this.channels.get(peer)
        this.channels.set(peer, ch)
        if (old !== undefined && old !== ch) old.closed = true
      },
      { maxInboundStreams: SWIM_STREAMS, maxOutboundStreams: SWIM_STREAMS }
    )
  }

  async stop(): Promise<void> {
    this.started = false
    await this.components.node.unhandle(SWIM_PROTOCOL).catch(debugOn(this.components.log, 'unhandle of SWIM'))
    for (const ch of this.channels.values()) {
      ch.closed = true
      ch.stream.abort(new Error('stopped'))
    }
    this.channels.clear()
    this.opening.clear()
  }

  deliver(from: string, msg: SwimMessage): void {
    if (this.started) this.init.onMessage(from, msg)
  }

  malformed(ch: Channel, reason: string): void {
    this.init.onMalformed?.(ch.peer, reason)
    this.components.log.debug('malformed SWIM frame: stream reset', { peer: ch.peer, reason })
    ch.closed = true
    ch.stream.abort(new Error(`malformed SWIM frame: ${reason}`))
    this.drop(ch)
  }

  drop(ch: Channel): void {
    if (this.channels.get(ch.peer) === ch) this.channels.delete(ch.peer)
  }

  /**
   * Sends one message; never throws, never waits. True when it went out on an open stream, false when it waits for one
   * to open (a dial, so its round trip says little about the member) or was dropped.
   */
  send(to: string, msg: SwimMessage): boolean {
    if (!this.started) return false
    const frame = encodeSwim(msg)
    const ch = this.channels.get(to)
    if (ch !== undefined && !ch.closed) {
      ch.write(frame)
      return !ch.closed
    }
    const queued = this.opening.get(to)
    if (queued !== undefined) {
      if (queued.length < MAX_PENDING_FRAMES) queued.push(frame)
      return false
    }
    this.opening.set(to, [frame])
    void this.open(to)
    return false
  }

  private async open(peer: string): Promise<void> {
    const { node } = this.components
    const signal = AbortSignal.timeout(SWIM_DIAL_TIMEOUT_MS)
    try {
      const pid = this.init.peerIdOf(peer)
      const target = node.getConnections(pid).length > 0 ? pid : this.init.addrsOf(peer)
      if (Array.isArray(target) && target.length === 0) throw new Error('no address')
      const stream = await node.dialProtocol(target, SWIM_PROTOCOL, { signal })
      if (!this.started) {
        stream.abort(new Error('stopped'))
        return
      }
      const ch = new Channel(peer, stream, this)
      this.channels.set(peer, ch)
      for (const f of this.opening.get(peer) ?? []) ch.write(f)
    } catch (err) {
      debugOn(this.components.log, `SWIM stream to ${peer}`)(err)
    } finally {
      this.opening.delete(peer)
    }
  }

  /** Whether a stream to the member is open (a message to it goes out at once, with no dial). */
  connected(peer: string): boolean {
    const ch = this.channels.get(peer)
    return ch !== undefined && !ch.closed
  }

  /** Forgets a member's stream (it was forgotten, or its connection closed). */
  close(peer: string): void {
    const ch = this.channels.get(peer)
    if (ch === undefined) return
    this.channels.delete(peer)
    ch.closed = true
    ch.stream.abort(new Error('closed'))
  }
}
