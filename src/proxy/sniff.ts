// Which HTTP a new entrypoint connection speaks, from its first bytes: HTTP/2 with prior
// knowledge (h2c, RFC 9113 §3.3) begins with the preface "PRI * HTTP/2.0\r\n"; anything else
// is HTTP/1.1. The bytes read are put back, so the server that takes it sees them all.
import type { Socket } from 'node:net'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n')

/** Calls `take` once the connection's kind is known; a connection silent for `timeoutMs` is closed. */
export function sniffH2(socket: Socket, timeoutMs: number, take: (h2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => {
    socket.destroy()
  }, timeoutMs)
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
    const n = Math.min(seen.length, PREFACE.length)
    const same = seen.subarray(0, n).equals(PREFACE.subarray(0, n))
    if (same && n < PREFACE.length) return
    done(same)
  }
  const onGone = (): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('end', onEnd)
  }
  // The client ended its side within the first bytes of the preface ("P", "PRI"): no request
  // can follow, and an ended socket can take no bytes back; what Node's parser says to a cut-off request.
  const onEnd = (): void => {
    onGone()
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
  }
  const done = (h2: boolean): void => {
    onGone()
    socket.off('close', onGone)
    socket.off('error', onGone)
    socket.pause()
    socket.unshift(seen)
    take(h2)
    // The server that took it reads the bytes put back first, then the socket as it comes.
    process.nextTick(() => socket.resume())
  }
  socket.on('data', onData)
  socket.once('end', onEnd)
  socket.once('close', onGone)
  // An error before the kind is known (a reset) ends it; the socket is destroyed by then.
  socket.once('error', onGone)
}
