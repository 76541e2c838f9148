// HTTP/1.1 upgrades (WebSocket and any other `Upgrade:`) through the hop: the request head
// is written on as it came (with the X-Forwarded-* and Via of every hop), and from then on
// the bytes flow both ways unchanged (the 101, frames, pings, close frames) until either
// side closes. Both sides use it: the proxy towards the instance host's stream (or a local
// instance), the host towards the instance.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { connect, type Socket } from 'node:net'
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
 * is destroyed.
 */
export function splice(a: Duplex, b: Duplex, done: () => void): void {
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
