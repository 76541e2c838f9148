// Small HTTP server helpers shared by the admin API and the proxy entrypoint.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** "host:port" or "[v6]:port" → parts; undefined when it is not that. */
export function parseHostPort (s: string): { host: string, port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(s)
  if (m === null || Number(m[2]) > 65535) return undefined
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/** Listens and resolves with the bound "host:port" (IPv6 in brackets), or rejects with the listen error. */
export async function listenOn (server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const a = server.address() as AddressInfo
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
}
