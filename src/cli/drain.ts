// `physarum drain`: finds the allocator to drain on this host (its admin API is loopback only, so a drain is asked on
// the allocator's own host), asks it over POST /v1/drain and prints its report.
import { request } from 'undici'
import { localAgents } from '../cluster/local-agents.js'
import { roleDefaults } from '../config/defaults.js'
import type { DrainReport } from '../allocator/drain.js'
import { UsageError } from './base.js'

/** How long finding the allocator may take per admin API asked (ms). */
const ASK_TIMEOUT_MS = 1500

/** Beyond the drain's deadline, the answer may take this long (ms): the stops after the deadline. */
const ANSWER_SLACK_MS = 60000

/** "5m", "30s", "1500ms", "1h", or plain seconds → ms; undefined when it is none of them. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) return undefined
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  return Number(m[1]) * unit
}

async function self(hostPort: string): Promise<{ peer: string; roles: string[] } | undefined> {
  try {
    const res = await request(`http://${hostPort}/v1/self`, { signal: AbortSignal.timeout(ASK_TIMEOUT_MS) })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return undefined
    }
    const b = (await res.body.json()) as { peer?: unknown; roles?: unknown }
    return typeof b.peer === 'string' && Array.isArray(b.roles)
      ? { peer: b.peer, roles: b.roles as string[] }
      : undefined
  } catch {
    return undefined
  }
}

/** The admin API of the allocator to drain: `peer`, or the one allocator of this host. */
export async function findAllocator(
  peer: string | undefined,
  agent: string | undefined
): Promise<{ admin: string; peer: string }> {
  const local = localAgents()
    .filter(a => a.role === 'allocator' && a.admin !== undefined)
    .map(a => a.admin as string)
  const dflt = roleDefaults('allocator').AdminListen
  const ask = agent !== undefined ? [agent] : [...new Set([...local, ...(dflt !== undefined ? [dflt] : [])])]
  const found: Array<{ admin: string; peer: string }> = []
  for (const admin of ask) {
    const s = await self(admin)
    if (s?.roles.includes('allocator') === true && (peer === undefined || s.peer === peer))
      found.push({ admin, peer: s.peer })
  }
  const uniq = [...new Map(found.map(f => [f.peer, f])).values()]
  if (uniq.length === 1) return uniq[0]
  if (uniq.length > 1)
    throw new UsageError(
      `${uniq.length} allocators run on this host: name one (physarum drain PEER): ${uniq.map(f => f.peer).join(', ')}`
    )
  if (peer !== undefined)
    throw new UsageError(
      `${peer} is not an allocator on this host (asked ${ask.join(', ')}): a drain is asked of the allocator's own admin API, on its host`
    )
  throw new UsageError(`no allocator answers on this host (asked ${ask.join(', ') || 'none'})`)
}

/** POST /v1/drain; the report, or the allocator's refusal as a one-line error. */
export async function askDrain(
  admin: string,
  body: { undo?: boolean; deadlineS?: number },
  deadlineMs: number
): Promise<DrainReport | { state: 'serving' }> {
  const timeoutMs = deadlineMs + ANSWER_SLACK_MS
  let res
  try {
    // TOKEN: the admin token goes into this request (issue 16, item 8).
    res = await request(`http://${admin}/v1/drain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    throw new UsageError(
      `the allocator at ${admin} did not answer: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  const answer = (await res.body.json().catch(() => ({}))) as { error?: string }
  if (res.statusCode !== 200) throw new UsageError(`the allocator refused: ${answer.error ?? `HTTP ${res.statusCode}`}`)
  return answer as DrainReport | { state: 'serving' }
}

export function formatReport(peer: string, r: DrainReport | { state: 'serving' }): string {
  if (r.state === 'serving') return `${peer}: back in service, taking allocations again\n`
  const lines = [
    `${peer}: drained in ${(r.tookMs / 1000).toFixed(1)} s, now in maintenance (physarum drain --undo ends it)`
  ]
  for (const m of r.moved)
    lines.push(
      `  ${m.app} → ${m.to} (instance ${m.instance}); ${m.stopped} instance(s) stopped here${m.cutOff > 0 ? `, ${m.cutOff} request(s) cut off at the deadline` : ''}`
    )
  for (const s of r.stranded) lines.push(`  ${s.app}: not moved, its instances here keep serving: ${s.reason}`)
  if (r.idleStopped > 0) lines.push(`  ${r.idleStopped} idle instance(s) stopped`)
  if (r.moved.length === 0 && r.stranded.length === 0 && r.idleStopped === 0) lines.push('  no instances to move')
  return lines.join('\n') + '\n'
}
