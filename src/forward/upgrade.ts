// HTTP/1.1 upgrades (WebSocket and any other `Upgrade:`) through the hop: the request head
// is written on as it came (with the X-Forwarded-* and Via of every hop), and from then on
// the bytes flow both ways unchanged (the 101, frames, pings, close frames) until either
// side closes. Both sides use it: the proxy towards the instance host's stream (or a local
// instance), the host towards the instance.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { connect, type Socket } from 'node:net'
import type { StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { StreamSocket } from './duplex.js'
import { addForwarded } from './headers.js'
import { SPLICE_LINGER_MS } from './constants.js'

/** Why CONNECT gets a 501, on both sides of the hop. */
export const CONNECT_REFUSED = 'CONNECT is not supported: physarum forwards requests to apps, it is no tunnel'

/** A WebSocket close frame from the server side: code 1001, "going away" (RFC 6455 §7.4.1). */
export const WS_GOING_AWAY = Buffer.from([0x88, 0x02, 0x03, 0xe9])

/** The request head to send on: method, `path`, every header but the hop's own additions appended. */
export function upgradeHead(
  req: IncomingMessage,
  path: string,
  hop: { clientIp?: string; proto?: string; via: string }
): Buffer {
  const headers: Record<string, string | string[]> = {}
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i].toLowerCase()
    const v = req.rawHeaders[i + 1]
    const prev = headers[k]
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  addForwarded(headers, { ...hop, host: req.headers.host })
  let head = `${req.method ?? 'GET'} ${path} HTTP/1.1\r\n`
  for (const [k, v] of Object.entries(headers)) for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`
  return Buffer.from(head + '\r\n', 'latin1')
}

/** Whether the upgrade is to WebSocket (a drain then closes it with 1001, not by cutting it). */
export function isWebSocket(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
}

/**
 * Joins two sockets until both are closed; `done` runs once then. An end on one side ends
 * the other's writing side once what was piped is written (so a last close frame gets
 * through); a failure, or a side that stays open SPLICE_LINGER_MS after the other closed,
 * is destroyed. A side that is a forwarding stream (./duplex.ts) is joined to the libp2p
 * stream itself: each message is written on as it comes, with no stream machinery between.
 */
export function splice(a: Duplex, b: Duplex, done: () => void): void {
  if (isStreamSocket(b)) spliceStream(a, b, done)
  else if (isStreamSocket(a)) spliceStream(b, a, done)
  else splicePiped(a, b, done)
}

function isStreamSocket(d: Duplex): d is StreamSocket {
  return typeof (d as Partial<StreamSocket>).detach === 'function'
}

function splicePiped(a: Duplex, b: Duplex, done: () => void): void {
  let closed = 0
  const onClose = (other: Duplex) => (): void => {
    if (!other.destroyed) {
      other.end()
      setTimeout(() => other.destroy(), SPLICE_LINGER_MS).unref()
    }
    if (++closed === 2) done()
  }
  a.on('error', () => b.destroy())
  b.on('error', () => a.destroy())
  a.once('close', onClose(b))
  b.once('close', onClose(a))
  a.pipe(b)
  b.pipe(a)
}

/** `socket` ⇄ the libp2p stream under `ss`, with backpressure both ways (a full side pauses the other). */
function spliceStream(socket: Duplex, ss: StreamSocket, done: () => void): void {
  const stream = ss.detach()
  let closed = 0
  const onClosed = (): void => {
    if (++closed === 2) done()
  }
  const linger = (d: Duplex): void => {
    if (d.destroyed) return
    d.end()
    setTimeout(() => d.destroy(), SPLICE_LINGER_MS).unref()
  }
  // What the stream's socket read before (after an upgrade's head, or with an answer's head): first.
  for (let chunk: Buffer | null; (chunk = ss.read() as Buffer | null) !== null;) socket.write(chunk)
  const toSocket = (evt: StreamMessageEvent): void => {
    const data = evt.data
    if (!socket.write(data instanceof Uint8Array ? data : data.subarray()) && stream.readStatus === 'readable') {
      stream.pause()
      socket.once('drain', () => {
        if (stream.readStatus === 'paused') stream.resume()
      })
    }
  }
  const remoteEnded = (): void => {
    if (!socket.destroyed) socket.end()
  }
  stream.addEventListener('message', toSocket)
  stream.addEventListener('remoteCloseWrite', remoteEnded)
  // The other side ended its writing (or went) before the splice: its events came and went.
  if (stream.remoteWriteStatus === 'closed') remoteEnded()
  let drainWait = false
  const toStream = (chunk: Buffer): void => {
    let ok: boolean
    try {
      ok = stream.send(chunk)
    } catch (err) {
      ss.destroy(err as Error)
      return
    }
    if (!ok && !drainWait) {
      drainWait = true
      socket.pause()
      stream.onDrain().then(
        () => {
          drainWait = false
          socket.resume()
        },
        () => {
          socket.destroy()
        }
      )
    }
  }
  socket.on('data', toStream)
  socket.once('end', () => {
    // Its last bytes are sent by then: the stream's writing side ends after them.
    if (!ss.destroyed) ss.end()
  })
  socket.on('error', () => ss.destroy())
  socket.once('close', () => {
    linger(ss)
    onClosed()
  })
  const streamClosed = (evt?: StreamCloseEvent): void => {
    stream.removeEventListener('message', toSocket)
    stream.removeEventListener('remoteCloseWrite', remoteEnded)
    if (evt?.error !== undefined) socket.destroy()
    else linger(socket)
    if (!ss.destroyed) ss.destroy()
    onClosed()
  }
  if (stream.status === 'open' || stream.status === 'closing')
    stream.addEventListener('close', streamClosed, { once: true })
  else streamClosed()
  socket.resume()
}

/** A TCP connection to HOST:PORT, once connected (an instance, for an upgrade). */
export async function connected(host: string, port: number): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    // No Nagle: a WebSocket message or an HTTP/2 frame is sent as it comes, not held for the last one's ACK.
    const s = connect({ port, host, noDelay: true })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** The body of every physarum error answer: {"error": {code, message}}. */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } }) + '\n'
}

/** A plain HTTP answer on a socket that was to be upgraded, then the socket closed. */
export function refuseUpgrade(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {}
): void {
  const body = errorBody(code, message)
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`
  for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`
  if (socket.writable) socket.end(head + '\r\n' + body)
  else socket.destroy()
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  499: 'Client Closed Request',
  501: 'Not Implemented',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}
