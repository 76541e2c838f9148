// HTTP header rules of a proxy hop: drop hop-by-hop headers (RFC 9110 §7.6.1), and add
// the X-Forwarded-* and Via headers.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/** A copy without hop-by-hop headers, including those named in Connection. */
export function endToEnd (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const named = new Set<string>()
  const conn = headers.connection
  for (const v of Array.isArray(conn) ? conn : conn !== undefined ? [conn] : []) for (const t of v.split(',')) named.add(t.trim().toLowerCase())
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(headers)) {
    const key = k.toLowerCase()
    if (v === undefined || HOP_BY_HOP.has(key) || named.has(key)) continue
    out[key] = v
  }
  return out
}

/** A list-valued header with one more element. */
export function appendList (v: string | string[] | undefined, item: string): string {
  return v === undefined ? item : `${Array.isArray(v) ? v.join(', ') : v}, ${item}`
}

/**
 * Sends an upstream response's head (its end-to-end headers plus `extra`), corked so
 * that the head, a small body and its end leave in one write: one socket write, or one
 * libp2p frame, instead of three.
 */
export function relayHead (res: ServerResponse, statusCode: number, upstream: Record<string, string | string[] | undefined>, extra: Record<string, string>): void {
  res.writeHead(statusCode, { ...endToEnd(upstream), ...extra })
  res.cork()
  setImmediate(() => { res.uncork() })
}

/** Adds X-Forwarded-For/Proto/Host (keeping what an earlier hop set) and Via. */
export function addForwarded (h: Record<string, string | string[]>, hop: { clientIp?: string, proto?: string, host?: string, via: string }): Record<string, string | string[]> {
  if (hop.clientIp !== undefined) h['x-forwarded-for'] = appendList(h['x-forwarded-for'], hop.clientIp)
  h['x-forwarded-proto'] ??= hop.proto ?? 'http'
  if (hop.host !== undefined) h['x-forwarded-host'] ??= hop.host
  h.via = appendList(h.via, hop.via)
  return h
}
