// HTTP rules of a proxy hop, shared by the proxy's entrypoint and the serving side: drop
// hop-by-hop headers (RFC 9110 §7.6.1), add the X-Forwarded-* and Via headers, and what
// may be sent again after a connection broke under it.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'

/** Methods a hop may send again, once, when the connection broke under the request (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS'])

/** undici's codes for a connection that closed or reset under a request. */
const LOST_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

export function connectionLost(err: unknown): boolean {
  return LOST_CONNECTION.has((err as { code?: string } | undefined)?.code ?? '')
}

/** Whether a request carries a body (a Content-Length other than 0, or a Transfer-Encoding). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  return headers['content-length'] !== undefined
    ? headers['content-length'] !== '0'
    : headers['transfer-encoding'] !== undefined
}

// Expect is answered at this hop (Node's server sends the 100 Continue itself); undici
// refuses it, and refusing it left a connection of the pool unusable for good.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect'
])

/** A copy without hop-by-hop headers, including those named in Connection. */
export function endToEnd(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>
): Record<string, string | string[]> {
  // Runs twice per request on each hop: no Set unless Connection names headers, one pass.
  let named: Set<string> | undefined
  const conn = headers.connection
  if (conn !== undefined) {
    named = new Set<string>()
    for (const v of Array.isArray(conn) ? conn : [conn]) for (const t of v.split(',')) named.add(t.trim().toLowerCase())
  }
  const out: Record<string, string | string[]> = {}
  for (const k of Object.keys(headers)) {
    const v = headers[k]
    const key = k.toLowerCase()
    // HTTP/2 pseudo-headers (':path', …) are the request line, not headers.
    if (v === undefined || key.charCodeAt(0) === 58 || HOP_BY_HOP.has(key) || named?.has(key) === true) continue
    out[key] = v
  }
  return out
}

/** A list-valued header with one more element. */
export function appendList(v: string | string[] | undefined, item: string): string {
  return v === undefined ? item : `${Array.isArray(v) ? v.join(', ') : v}, ${item}`
}

/**
 * Sends an upstream response's head (its end-to-end headers plus `extra`), corked so
 * that the head, a small body and its end leave in one write: one socket write, or one
 * libp2p frame, instead of three. undici parses a whole read in one go (head, body and
 * end of a small response alike), so uncorking once that is done (process.nextTick)
 * merges them as well as waiting for the next loop phase did, without the wait.
 */
export function relayHead(
  res: ServerResponse,
  statusCode: number,
  upstream: Record<string, string | string[] | undefined>,
  extra: Record<string, string>
): void {
  res.writeHead(statusCode, Object.assign(endToEnd(upstream), extra))
  res.cork()
  process.nextTick(uncork, res)
}

function uncork(res: ServerResponse): void {
  res.uncork()
}

/** Adds X-Forwarded-For/Proto/Host (keeping what an earlier hop set) and Via. */
export function addForwarded(
  h: Record<string, string | string[]>,
  hop: { clientIp?: string; proto?: string; host?: string; via: string }
): Record<string, string | string[]> {
  if (hop.clientIp !== undefined) h['x-forwarded-for'] = appendList(h['x-forwarded-for'], hop.clientIp)
  h['x-forwarded-proto'] ??= hop.proto ?? 'http'
  if (hop.host !== undefined) h['x-forwarded-host'] ??= hop.host
  h.via = appendList(h.via, hop.via)
  return h
}
