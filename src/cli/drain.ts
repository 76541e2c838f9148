// `physarum drain`: finds the allocator to drain. One on this host is asked on its own loopback admin API
// (POST /v1/drain); a PEER elsewhere through an agent on this host (POST /v1/remote/drain), which carries the request
// over /physarum/admin/1.0.0 with its own identity (the target must list it in Admin.Operators). Prints the report.
import { request } from 'undici'
import type { Config } from '../config/schema.js'
import { AgentUnreachable, agentRefs, callAgent, errorOf, type AgentRef } from './admin-client.js'
import type { DrainReport } from '../allocator/drain.js'
import { UsageError } from './base.js'

/** How long finding the allocator may take per admin API asked (ms). */
const ASK_TIMEOUT_MS = 1500

/** Beyond the drain's deadline, the answer may take this long (ms): the stops after the deadline. */
const ANSWER_SLACK_MS = 60000

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

/** Where a drain goes: an allocator of this host (its own admin API), or a peer elsewhere through a local agent. */
export type DrainTarget =
  ({ kind: 'local'; peer: string } & AgentRef) | { kind: 'remote'; peer: string; via: AgentRef & { peer: string } }

/** The allocator to drain: `peer`, or the one allocator of this host. */
export async function findAllocator(
  config: Config,
  peer: string | undefined,
  agent: string | undefined,
  tokenFile: string | undefined
): Promise<DrainTarget> {
  const refs = agentRefs(config, { agent, 'token-file': tokenFile })
  const ask = refs.map(r => r.admin)
  const answering: Array<AgentRef & { peer: string; roles: string[] }> = []
  for (const ref of refs) {
    const s = await self(ref.admin)
    if (s !== undefined) answering.push({ ...ref, ...s })
  }
  const found = answering.filter(a => a.roles.includes('allocator') && (peer === undefined || a.peer === peer))
  const uniq = [...new Map(found.map(f => [f.peer, f])).values()]
  if (uniq.length === 1) return { kind: 'local', ...uniq[0] }
  if (uniq.length > 1)
    throw new UsageError(
      `${uniq.length} allocators run on this host: name one (physarum drain PEER): ${uniq.map(f => f.peer).join(', ')}`
    )
  if (peer === undefined) throw new UsageError(`no allocator answers on this host (asked ${ask.join(', ') || 'none'})`)
  const here = answering.find(a => a.peer === peer)
  if (here !== undefined) throw new UsageError(`${peer} is a ${here.roles.join('/')} on this host, not an allocator`)
  // Elsewhere: through an agent here (allocators first, as agentRefs ranks them).
  const via = answering[0]
  if (via === undefined)
    throw new UsageError(
      `${peer} is not on this host, and no agent here answers (asked ${ask.join(', ') || 'none'}): a drain of another host's allocator goes through an allocator or proxy on this one`,
      1
    )
  return { kind: 'remote', peer, via }
}

/** POST /v1/remote/drain on the local agent `via`; the target's report, or why not as a one-line error. */
export async function askRemoteDrain(
  via: AgentRef & { peer: string },
  peer: string,
  body: { undo?: boolean; deadlineS?: number },
  deadlineMs: number
): Promise<DrainReport | { state: 'serving' }> {
  let answer
  try {
    // The agent's own wait is the deadline plus its slack: this one waits a little longer, to get its answer.
    answer = await callAgent(via, 'POST', '/v1/remote/drain', { peer, ...body }, deadlineMs + 2 * ANSWER_SLACK_MS)
  } catch (err) {
    if (err instanceof AgentUnreachable) throw new UsageError(`the local agent did not answer: ${err.message}`, 1)
    throw err
  }
  if (answer.status === 401) throw new UsageError(`the local agent ${via.admin} refused: ${errorOf(answer)}`, 1)
  if (answer.status !== 200) throw new UsageError(errorOf(answer), 1)
  return answer.body as DrainReport | { state: 'serving' }
}

/** POST /v1/drain; the report, or the allocator's refusal as a one-line error. */
export async function askDrain(
  ref: AgentRef,
  body: { undo?: boolean; deadlineS?: number },
  deadlineMs: number
): Promise<DrainReport | { state: 'serving' }> {
  let answer
  try {
    answer = await callAgent(ref, 'POST', '/v1/drain', body, deadlineMs + ANSWER_SLACK_MS)
  } catch (err) {
    if (err instanceof AgentUnreachable) throw new UsageError(`the allocator did not answer: ${err.message}`, 1)
    throw err
  }
  if (answer.status !== 200) throw new UsageError(`the allocator refused: ${errorOf(answer)}`, 1)
  return answer.body as DrainReport | { state: 'serving' }
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
