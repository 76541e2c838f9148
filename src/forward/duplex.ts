// A libp2p stream as a Node.js Duplex, with backpressure both ways, so that Node's HTTP
// server (serving side) and undici (client side) can speak HTTP/1.1 over it.
import { Duplex } from 'node:stream'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { STREAM_HIGH_WATER_MARK } from './constants.js'

export interface StreamSocket extends Duplex {
  remoteAddress?: string
  setTimeout: (ms: number, cb?: () => void) => StreamSocket
  setNoDelay: (noDelay?: boolean) => StreamSocket
  setKeepAlive: (enable?: boolean, delay?: number) => StreamSocket
  /**
   * Hands the stream's incoming bytes over (an upgraded connection's splice, ./upgrade.ts): they no longer go to the
   * readable side, where what came before stays to be read. Writing, ending and destroying the socket work as before.
   */
  detach: () => Stream
}

export function streamToDuplex(stream: Stream, remoteAddress?: string): StreamSocket {
  let paused = false
  const send = (buf: Uint8Array | Uint8ArrayList, cb: (err?: Error | null) => void): void => {
    try {
      if (stream.send(buf)) cb()
      else
        stream.onDrain().then(() => {
          cb()
        }, cb)
    } catch (err) {
      cb(err as Error)
    }
  }
  const d = new Duplex({
    allowHalfOpen: true,
    readableHighWaterMark: STREAM_HIGH_WATER_MARK,
    writableHighWaterMark: STREAM_HIGH_WATER_MARK,
    read() {
      if (paused) {
        paused = false
        if (stream.readStatus === 'paused') stream.resume()
      }
    },
    write(chunk: Buffer, _enc, cb) {
      send(chunk, cb)
    },
    // HTTP writes headers and body as separate chunks: one libp2p message for all of
    // them means one yamux frame, one noise frame and one socket write instead of several.
    // As a list, not a copy: what waited while the stream pushed back can be 256 KiB of a
    // large body, and yamux cuts its frames from the list without copying.
    writev(chunks: Array<{ chunk: Buffer }>, cb) {
      if (chunks.length === 1) send(chunks[0].chunk, cb)
      else {
        const list = new Uint8ArrayList()
        for (const c of chunks) list.append(c.chunk)
        send(list, cb)
      }
    },
    final(cb) {
      stream.close().then(
        () => {
          cb()
        },
        () => {
          cb()
        }
      )
    },
    destroy(err, cb) {
      if (stream.status === 'open' || stream.status === 'closing') stream.abort(err ?? new Error('socket destroyed'))
      cb(err)
    }
  }) as StreamSocket
  const onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data
    const buf = data instanceof Uint8Array ? data : data.subarray()
    // push() may destroy the socket at once (Node's HTTP parser refusing the bytes aborts
    // the stream): a stream whose readable end is closing or closed cannot be paused, and
    // an exception here would be thrown from an event listener and end the process.
    if (!d.push(buf) && !paused && stream.readStatus === 'readable') {
      paused = true
      stream.pause()
    }
  }
  const onRemoteCloseWrite = (): void => {
    d.push(null)
  }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite)
  stream.addEventListener('close', evt => {
    if (evt.error !== undefined && !d.destroyed) d.destroy(evt.error)
    else d.push(null)
  })
  // Node's HTTP server and undici call these on a socket; a libp2p stream has its own
  // inactivity timeout and needs neither Nagle nor TCP keep-alive settings.
  d.remoteAddress = remoteAddress
  d.setTimeout = (_ms: number, _cb?: () => void) => d
  d.setNoDelay = () => d
  d.setKeepAlive = () => d
  d.detach = () => {
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite)
    if (paused) {
      paused = false
      if (stream.readStatus === 'paused') stream.resume()
    }
    return stream
  }
  return d
}
