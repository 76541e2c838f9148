// HTTP header rules of a proxy hop: drop hop-by-hop headers (RFC 9110 §7.6.1), and add
// the X-Forwarded-* and Via headers.
import type { IncomingHttpHeaders } from 'node:http'

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

/** Adds X-Forwarded-For/Proto/Host (keeping what an earlier hop set) and Via. */
export function addForwarded (h: Record<string, string | string[]>, hop: { clientIp?: string, proto?: string, host?: string, via: string }): Record<string, string | string[]> {
  const join = (v: string | string[] | undefined): string | undefined => Array.isArray(v) ? v.join(', ') : v
  const xff = join(h['x-forwarded-for'])
  if (hop.clientIp !== undefined) h['x-forwarded-for'] = xff !== undefined ? `${xff}, ${hop.clientIp}` : hop.clientIp
  h['x-forwarded-proto'] ??= hop.proto ?? 'http'
  if (hop.host !== undefined) h['x-forwarded-host'] ??= hop.host
  const via = join(h.via)
  h.via = via !== undefined ? `${via}, ${hop.via}` : hop.via
  return h
}
