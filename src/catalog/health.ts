// Readiness and liveness checks of an instance: an HTTP GET of Health.Path answering
// below 500, or a TCP connect.
import { connect } from 'node:net'
import { request } from 'undici'
import type { AppSpec } from './catalog.js'
import { hostPort } from '../util/http.js'

export async function checkOnce(spec: AppSpec, host: string, port: number, timeoutMs: number): Promise<boolean> {
  return await checkAddress(spec.health, host, port, timeoutMs)
}

/** One check of whatever listens at host:port: a TCP connect, or an HTTP GET of `path` answering below 500. */
export async function checkAddress(
  check: Pick<AppSpec['health'], 'tcp' | 'path'>,
  host: string,
  port: number,
  timeoutMs: number
): Promise<boolean> {
  if (check.tcp) {
    return await new Promise(resolve => {
      const s = connect({ host, port })
      const t = setTimeout(() => {
        s.destroy()
        resolve(false)
      }, timeoutMs)
      s.once('connect', () => {
        clearTimeout(t)
        s.destroy()
        resolve(true)
      })
      s.once('error', () => {
        clearTimeout(t)
        resolve(false)
      })
    })
  }
  try {
    const res = await request(`http://${hostPort(host, port)}${check.path}`, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
      headers: { 'user-agent': 'physarum-health' }
    })
    await res.body.dump()
    return res.statusCode < 500
  } catch {
    return false
  }
}
