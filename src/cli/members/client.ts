// Gets the member table for `physarum members`: from a local agent's admin API, or by
// joining the cluster briefly as an observer through the bootstraps.
import { request } from 'undici'
import { Agent, type MemberView } from '../../cluster/agent.js'
import type { Config } from '../../config/schema.js'
import { roleDefaults } from '../../config/defaults.js'
import { localAgents } from '../../cluster/local-agents.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from '../../util/log.js'
import { setTimeout as sleep } from 'node:timers/promises'

export class AgentUnreachableError extends Error {
  override name = 'AgentUnreachableError'
}

/**
 * The admin APIs to ask, in order: --agent, else Admin.Listen when the user set one, else
 * the daemons of this user on this host (local-agents.ts: allocators first), then the
 * roles' default ports (a daemon of another user, or one started before it was recorded).
 */
export function agentsToAsk(config: Config, flagAgent?: string): string[] {
  if (flagAgent !== undefined) return [flagAgent]
  if (config.Admin.Listen !== undefined) return [config.Admin.Listen]
  const local = localAgents().flatMap(a => (a.admin !== undefined ? [a.admin] : []))
  const defaults = [roleDefaults('allocator').AdminListen, roleDefaults('proxy').AdminListen]
  // The defaults only without a record: not another user's daemon, or another runtime directory's, on a default port.
  return local.length > 0 ? [...new Set(local)] : defaults.filter((a): a is string => a !== undefined)
}

/** The member list of the first of `agents` that answers; none: undefined, with why each did not. */
export async function fromFirstAgent(agents: string[]): Promise<{ rows?: MemberView[]; tried: string[] }> {
  const tried: string[] = []
  for (const a of agents) {
    try {
      return { rows: await fromAgent(a), tried }
    } catch (err) {
      if (!(err instanceof AgentUnreachableError)) throw err
      tried.push(err.message)
    }
  }
  return { tried }
}

export async function fromAgent(hostPort: string, timeoutMs = 1500): Promise<MemberView[]> {
  try {
    const res = await request(`http://${hostPort}/v1/members`, {
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs)
    })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new AgentUnreachableError(`agent at ${hostPort} answered ${res.statusCode}`)
    }
    const body = await res.body.json()
    if (!Array.isArray(body)) throw new AgentUnreachableError(`agent at ${hostPort} sent no member list`)
    return body as MemberView[]
  } catch (err) {
    if (err instanceof AgentUnreachableError) throw err
    throw new AgentUnreachableError(
      `no agent answers on ${hostPort} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
    )
  }
}

/** Joins as an ephemeral observer, waits for the view to settle, measures RTTs, leaves. */
export async function byJoining(config: Config, log: Logger, waitMs: number): Promise<MemberView[]> {
  return await joinBriefly(config, log, waitMs, agent => agent.view().filter(v => !v.self))
}

/** Joins as an ephemeral observer, lets the view settle and measures RTTs, reads what `read` reads, leaves. */
export async function joinBriefly<T>(config: Config, log: Logger, waitMs: number, read: (a: Agent) => T): Promise<T> {
  // The config is the observer's (loadConfig): it listens on loopback when the bootstraps are there.
  const agent = await Agent.start({ role: 'observer', config, log, admin: false })
  try {
    const deadline = Date.now() + waitMs
    let count = -1
    let stableSince = Date.now()
    // Settled: at least one member, and no newcomer for 400 ms (or the wait is over).
    while (Date.now() < deadline) {
      const n = agent.membership.members().length
      if (n !== count) {
        count = n
        stableSince = Date.now()
      }
      if (n > 0 && Date.now() - stableSince > 400) break
      await sleep(50)
    }
    const peers = agent.membership
      .members()
      .filter(m => m.status === 'alive')
      .map(m => peerIdFromString(m.announcement.peer))
    await agent.rtt.measureMany(peers, { samples: 3, timeoutMs: Math.max(300, Math.min(1000, deadline - Date.now())) })
    return read(agent)
  } finally {
    await agent.beforeStop()
    await agent.stop()
  }
}
