// HTTP/2-like calls over one libp2p stream in the framing of ./frames.ts (proto 'calls'):
// the proxy's side opens calls on a CallSession (one per instance, as an HTTP/2 session was),
// the host's side accepts them. A Call has the members of a node:http2 stream that the relay
// uses (./h2.ts relayStream, respondError, ReplayableBody): request or respond with headers,
// write/end with back-pressure (a per-call window of CALL_WINDOW bytes, returned by WINDOW
// frames as the receiver's consumer takes the bytes), trailers, close(code) as RST_STREAM,
// and the events 'response', 'trailers', 'data', 'end', 'drain', 'wantTrailers', 'close'.
// Frames written in one turn of the event loop go out as one libp2p message.
import { EventEmitter } from 'node:events'
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import {
  FLAG_ACK,
  FLAG_END_STREAM,
  FrameReader,
  FrameType,
  MAX_DATA_PAYLOAD,
  decodeHeaders,
  decodeU32,
  encodeFrame,
  encodeHeaders,
  encodeU32,
  type Frame
} from './frames.js'
import { H2_PING_MS } from './constants.js'

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } = constants

/** The bytes of a call's body one side may send before the other took them (HTTP/2's stream window, as configured). */
export const CALL_WINDOW = 1 << 20
/** The taken bytes a receiver gathers before it sends a WINDOW frame for them. */
const WINDOW_UPDATE_AT = CALL_WINDOW / 4
/** Calls open at once on one stream (more are refused with RST REFUSED_STREAM), as the HTTP/2 sessions allow. */
export const MAX_CALLS = 1000

export class Call extends EventEmitter {
  headersSent = false
  closed = false
  destroyed = false
  rstCode = NGHTTP2_NO_ERROR
  writableEnded = false
  /** No HTTP/2 session under it (the relay's keep-alive pings are the CallSession's own). */
  readonly session = undefined
  private endSent = false
  private remoteEnded = false
  private endEmitted = false
  private credit = CALL_WINDOW
  private waiting: Buffer[] = []
  private needDrain = false
  private wantTrailers = false
  private flowing = false
  private queue: Buffer[] = []
  /** Bytes taken by the consumer and not yet returned to the sender by a WINDOW frame. */
  private taken = 0
  /** Bytes received and not yet returned by a WINDOW frame: the sender may not send more than CALL_WINDOW of them. */
  private received = 0

  constructor(
    readonly id: number,
    private readonly s: CallSession
  ) {
    super()
  }

  /** The answer's head (host side). */
  respond(headers: OutgoingHttpHeaders, opts: { endStream?: boolean; waitForTrailers?: boolean } = {}): void {
    if (this.closed || this.headersSent) return
    this.headersSent = true
    const end = opts.endStream === true
    this.wantTrailers = opts.waitForTrailers === true
    this.s.send(encodeHeaders(FrameType.HEADERS, end ? FLAG_END_STREAM : 0, this.id, headers as never))
    if (end) {
      this.writableEnded = true
      this.endSent = true
      this.maybeClose()
    }
  }

  write(chunk: Buffer | string): boolean {
    if (this.closed || this.writableEnded) return false
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (b.length > 0) {
      if (this.waiting.length === 0 && this.credit >= b.length) this.sendData(b, 0)
      else this.waiting.push(b)
    }
    const ok = this.waiting.length === 0 && !this.s.congested
    if (!ok) {
      this.needDrain = true
      this.s.wantsDrain(this)
    }
    return ok
  }

  end(chunk?: Buffer | string): void {
    if (chunk !== undefined) this.write(chunk)
    if (this.writableEnded) return
    this.writableEnded = true
    this.finish()
  }

  /** The trailers that end the answer (host side, after 'wantTrailers'). */
  sendTrailers(trailers: OutgoingHttpHeaders): void {
    if (this.closed || this.endSent) return
    this.endSent = true
    this.s.send(encodeHeaders(FrameType.TRAILERS, FLAG_END_STREAM, this.id, trailers as never))
    this.maybeClose()
  }

  /** Resets the call (RST with `code`), unless it is over already. */
  close(code: number = NGHTTP2_NO_ERROR): void {
    if (this.closed) return
    this.s.send(encodeU32(FrameType.RST, this.id, code))
    this.rstCode = code
    this.done(true)
  }

  pause(): this {
    this.flowing = false
    return this
  }

  resume(): this {
    if (this.flowing) return this
    this.flowing = true
    while (this.flowing && this.queue.length > 0) this.take(this.queue.shift() as Buffer)
    if (this.flowing) this.maybeEnd()
    return this
  }

  // ---- from the session

  /** @internal The request head ended the request (a bodyless call). */
  endedAtHead(): void {
    this.writableEnded = true
    this.endSent = true
  }

  /** @internal */
  onData(payload: Buffer, end: boolean): boolean {
    if (this.received + payload.length > CALL_WINDOW) return false
    this.received += payload.length
    if (payload.length > 0) {
      if (this.flowing && this.queue.length === 0) this.take(payload)
      else this.queue.push(payload)
    }
    if (end) this.onRemoteEnd()
    return true
  }

  /** @internal */
  onHeaders(headers: IncomingHttpHeaders, end: boolean): void {
    this.emit('response', headers, end ? FLAG_END_STREAM : 0)
    if (end) this.onRemoteEnd()
  }

  /** @internal */
  onTrailers(trailers: IncomingHttpHeaders): void {
    this.emit('trailers', trailers, FLAG_END_STREAM)
    this.onRemoteEnd()
  }

  /** @internal */
  onRst(code: number): void {
    if (this.closed) return
    this.rstCode = code
    this.done(true)
  }

  /** @internal */
  onWindow(increment: number): void {
    this.credit += increment
    while (this.waiting.length > 0 && this.credit > 0 && !this.closed) {
      const b = this.waiting[0]
      const n = Math.min(b.length, this.credit)
      if (n === b.length) this.waiting.shift()
      else this.waiting[0] = b.subarray(n)
      this.sendData(n === b.length ? b : b.subarray(0, n), 0)
    }
    if (this.waiting.length === 0) {
      this.onDrain()
      this.finish()
    }
  }

  /** @internal The session can take bytes again, or this call's window opened. */
  onDrain(): void {
    if (!this.needDrain || this.closed) return
    if (this.waiting.length === 0 && !this.s.congested) {
      this.needDrain = false
      this.emit('drain')
      return
    }
    // Still waiting, for the window (onWindow calls again) or for the session, which must then call again: the
    // session forgets a call once it has told it of a drain.
    if (this.s.congested) this.s.wantsDrain(this)
  }

  /** @internal The stream under it is gone. */
  onLost(): void {
    if (this.closed) return
    this.rstCode = NGHTTP2_INTERNAL_ERROR
    this.done(true)
  }

  private sendData(b: Buffer, flags: number): void {
    this.credit -= b.length
    for (let at = 0; at < b.length; at += MAX_DATA_PAYLOAD) {
      const part = b.subarray(at, Math.min(b.length, at + MAX_DATA_PAYLOAD))
      this.s.send(encodeFrame(FrameType.DATA, at + MAX_DATA_PAYLOAD >= b.length ? flags : 0, this.id, part))
    }
    if (b.length === 0) this.s.send(encodeFrame(FrameType.DATA, flags, this.id))
  }

  /** After end(): once what waits for the window went, the trailers are asked for, or the side is ended. */
  private finish(): void {
    if (!this.writableEnded || this.endSent || this.closed || this.waiting.length > 0) return
    if (this.wantTrailers) {
      this.wantTrailers = false
      process.nextTick(() => {
        if (!this.closed && !this.endSent) this.emit('wantTrailers')
      })
      return
    }
    this.endSent = true
    this.s.send(encodeFrame(FrameType.DATA, FLAG_END_STREAM, this.id))
    this.maybeClose()
  }

  private take(b: Buffer): void {
    this.emit('data', b)
    this.taken += b.length
    if (this.taken >= WINDOW_UPDATE_AT && !this.remoteEnded) {
      this.received -= this.taken
      this.s.send(encodeU32(FrameType.WINDOW, this.id, this.taken))
      this.taken = 0
    }
  }

  private onRemoteEnd(): void {
    if (this.remoteEnded) return
    this.remoteEnded = true
    this.maybeEnd()
    this.maybeClose()
  }

  private maybeEnd(): void {
    if (!this.remoteEnded || this.endEmitted || this.queue.length > 0 || !this.flowing) return
    this.endEmitted = true
    process.nextTick(() => this.emit('end'))
  }

  private maybeClose(): void {
    if (this.endSent && this.remoteEnded && !this.closed) this.done(false)
  }

  /** Closed: a reset drops what was not taken; a call that ended both ways still delivers what is queued. */
  private done(reset: boolean): void {
    this.closed = true
    this.destroyed = true
    this.writableEnded = true
    this.waiting = []
    if (reset) this.queue = []
    this.s.forget(this)
    process.nextTick(() => this.emit('close'))
  }
}

/**
 * One side of a 'calls' stream: the proxy's (`client`, opens calls by `request`) or the host's (`server`, emits
 * 'stream' with each new call and its request head). 'close' when the stream under it is gone; 'goaway' (client) when
 * the host takes no new calls.
 */
export class CallSession extends EventEmitter {
  closed = false
  destroyed = false
  /** The stream under it has more queued than it wants: writes wait for its drain. */
  congested = false
  private readonly calls = new Map<number, Call>()
  private readonly draining = new Set<Call>()
  private readonly reader = new FrameReader()
  private out: Buffer[] = []
  private flushing = false
  private nextId = 1
  private lastId = 0
  private goingAway = false
  private ping?: NodeJS.Timeout

  constructor(
    private readonly stream: Stream,
    private readonly role: 'client' | 'server',
    private readonly onError: (message: string) => void = () => {}
  ) {
    super()
    stream.addEventListener('message', (evt: StreamMessageEvent) => {
      this.onMessage(evt.data instanceof Uint8Array ? evt.data : evt.data.subarray())
    })
    stream.addEventListener('close', () => {
      this.lost()
    })
    stream.addEventListener('remoteCloseWrite', () => {
      this.lost()
    })
    if (role === 'server') this.send(encodeFrame(FrameType.HELLO, 0, 0))
    else {
      // A libp2p stream closes after 120 s without traffic: while a call is open (a quiet bidi call), a PING keeps it.
      this.ping = setInterval(() => {
        if (this.calls.size > 0) this.send(encodeFrame(FrameType.PING, 0, 0))
      }, H2_PING_MS)
      this.ping.unref()
    }
  }

  /** Calls open on it. */
  get size(): number {
    return this.calls.size
  }

  /**
   * A new call with its request head (client side). Typed as node:http2's client stream: a Call has the members of
   * one that the relay uses.
   */
  request(headers: OutgoingHttpHeaders, opts: { endStream?: boolean } = {}): ClientHttp2Stream {
    const call = new Call(this.nextId, this)
    this.nextId += 2
    call.headersSent = true
    if (this.closed) {
      process.nextTick(() => {
        call.onLost()
      })
      return call as unknown as ClientHttp2Stream
    }
    this.calls.set(call.id, call)
    const end = opts.endStream === true
    this.send(encodeHeaders(FrameType.HEADERS, end ? FLAG_END_STREAM : 0, call.id, headers as never))
    if (end) call.endedAtHead()
    return call as unknown as ClientHttp2Stream
  }

  /** Takes no new calls (server side: GOAWAY), and closes the stream once those open are over. */
  close(): void {
    if (this.goingAway) return
    this.goingAway = true
    if (this.role === 'server') this.send(encodeFrame(FrameType.GOAWAY, 0, 0))
    if (this.calls.size === 0) this.end()
  }

  /** Resets every call and the stream. */
  destroy(): void {
    if (this.destroyed) return
    this.stream.abort(new Error('call session destroyed'))
    this.lost()
  }

  /** @internal */
  send(frame: Buffer): void {
    if (this.closed) return
    this.out.push(frame)
    if (this.flushing) return
    this.flushing = true
    // After the I/O callbacks of this turn of the event loop (a microtask would run after each of node:http2's frame
    // callbacks): the head, body and trailers of a call, and the frames of the calls that came in one read, go out as
    // one libp2p message, one yamux frame and one socket write.
    setImmediate(() => {
      this.flush()
    })
  }

  /** @internal */
  wantsDrain(call: Call): void {
    this.draining.add(call)
  }

  /** @internal */
  forget(call: Call): void {
    this.calls.delete(call.id)
    this.draining.delete(call)
    if (this.goingAway && this.calls.size === 0) this.end()
  }

  private flush(): void {
    this.flushing = false
    const out = this.out
    this.out = []
    if (this.closed || out.length === 0) return
    try {
      if (!this.stream.send(out.length === 1 ? out[0] : Buffer.concat(out)) && !this.congested) {
        this.congested = true
        this.stream.onDrain().then(
          () => {
            this.congested = false
            for (const c of [...this.draining]) {
              this.draining.delete(c)
              c.onDrain()
            }
          },
          () => {}
        )
      }
    } catch (err) {
      this.onError(`send on a call stream failed: ${(err as Error).message}`)
      this.destroy()
    }
  }

  private end(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.stream.close().catch(() => {})
    this.lost()
  }

  private lost(): void {
    if (this.destroyed) return
    this.closed = true
    this.destroyed = true
    clearInterval(this.ping)
    for (const c of [...this.calls.values()]) c.onLost()
    this.calls.clear()
    this.emit('close')
  }

  /** A peer that breaks the framing loses the stream, and every call on it. */
  private fail(message: string): void {
    this.onError(message)
    this.destroy()
  }

  private onMessage(chunk: Uint8Array): void {
    const frames = this.reader.push(chunk)
    if ('error' in frames) {
      this.fail(frames.error)
      return
    }
    for (const f of frames) {
      if (this.destroyed) return
      this.onFrame(f)
    }
  }

  private onFrame(f: Frame): void {
    const end = (f.flags & FLAG_END_STREAM) !== 0
    switch (f.type) {
      case FrameType.HELLO:
        if (this.role === 'client') this.emit('hello')
        return
      case FrameType.PING:
        if ((f.flags & FLAG_ACK) === 0) this.send(encodeFrame(FrameType.PING, FLAG_ACK, 0, f.payload))
        return
      case FrameType.GOAWAY:
        if (this.role === 'client') {
          this.goingAway = true
          this.emit('goaway')
          if (this.calls.size === 0) this.end()
        }
        return
      case FrameType.HEADERS:
      case FrameType.TRAILERS: {
        const h = decodeHeaders(f.payload)
        if ('error' in h) {
          this.fail(h.error)
          return
        }
        const headers = h.headers as IncomingHttpHeaders
        if (this.role === 'server') {
          if (f.type !== FrameType.HEADERS || f.id <= this.lastId || f.id % 2 === 0) {
            this.fail(`a request head with call id ${f.id} after ${this.lastId}`)
            return
          }
          this.lastId = f.id
          const call = new Call(f.id, this)
          if (this.goingAway || this.calls.size >= MAX_CALLS) {
            this.send(encodeU32(FrameType.RST, f.id, NGHTTP2_REFUSED_STREAM))
            return
          }
          this.calls.set(f.id, call)
          this.emit('stream', call, headers)
          if (end) call.onData(Buffer.alloc(0), true)
          return
        }
        const call = this.calls.get(f.id)
        if (call === undefined) return
        if (f.type === FrameType.HEADERS) call.onHeaders(headers, end)
        else call.onTrailers(headers)
        return
      }
      case FrameType.DATA: {
        const call = this.calls.get(f.id)
        // Data of a call reset meanwhile.
        if (call === undefined) return
        if (!call.onData(f.payload, end)) this.fail(`call ${f.id} sent more than its window`)
        return
      }
      case FrameType.RST: {
        const code = decodeU32(f.payload)
        if (typeof code !== 'number') {
          this.fail(code.error)
          return
        }
        this.calls.get(f.id)?.onRst(code)
        return
      }
      case FrameType.WINDOW: {
        const n = decodeU32(f.payload)
        if (typeof n !== 'number') {
          this.fail(n.error)
          return
        }
        this.calls.get(f.id)?.onWindow(n)
      }
    }
  }
}
