// Small HTTP server helpers shared by the admin API and the proxy entrypoint.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Listens and resolves with the bound "host:port" (IPv6 in brackets), or rejects with the listen error. */
export async function listenOn (server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const a = server.address() as AddressInfo
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
}
