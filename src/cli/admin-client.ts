// How a command reaches the local agents' admin APIs: which agents (--agent, else
// Admin.Listen, else this user's daemons on this host from the runtime directory, else the
// roles' default ports), with which admin token (--token-file, else the file the agent
// recorded, else ~/.physarum/admin.token), and one call with a one-line error for failures.
import { request } from 'undici'
import type { Config } from '../config/schema.js'
import { roleDefaults } from '../config/defaults.js'
import { localAgents } from '../cluster/local-agents.js'
import { readToken, tokenFile } from '../cluster/admin/token.js'
import { UsageError } from './base.js'

/** An admin API to call, and the token file to read for a state-changing call. */
export interface AgentRef {
  admin: string
  tokenFile: string
  role?: string
}

export interface TargetFlags {
  agent?: string
  'token-file'?: string
}

/** The agents to try, in order (allocators first among this host's). */
export function agentRefs(config: Config, flags: TargetFlags): AgentRef[] {
  const fallback = flags['token-file'] ?? tokenFile(undefined)
  if (flags.agent !== undefined) return [{ admin: flags.agent, tokenFile: fallback }]
  if (config.Admin.Listen !== undefined) return [{ admin: config.Admin.Listen, tokenFile: fallback }]
  const out: AgentRef[] = []
  for (const a of localAgents())
    if (a.admin !== undefined)
      out.push({ admin: a.admin, role: a.role, tokenFile: flags['token-file'] ?? a.tokenFile ?? fallback })
  // The roles' default ports only when this user has no daemon recorded here: a call (a refresh, a deregister goes to
  // every agent) must not reach another user's daemon, or one of another runtime directory, that holds a default port.
  if (out.length === 0)
    for (const r of ['allocator', 'proxy'] as const) {
      const admin = roleDefaults(r).AdminListen
      if (admin !== undefined) out.push({ admin, tokenFile: fallback })
    }
  return out
}

export class AgentUnreachable extends Error {
  override name = 'AgentUnreachable'
}

export interface Answer {
  status: number
  body: unknown
}

/** The message of an error answer ({"error": …}), or its status. */
export function errorOf(a: Answer): string {
  const e = (a.body as { error?: unknown } | undefined)?.error
  return typeof e === 'string' ? e : `HTTP ${a.status}`
}

/** One call; a state-changing one (a method other than GET) carries the token. Unreachable: AgentUnreachable. */
export async function callAgent(
  ref: AgentRef,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  timeoutMs = 5000
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (method !== 'GET') headers.authorization = `Bearer ${readToken(ref.tokenFile)}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  try {
    const res = await request(`http://${ref.admin}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs)
    })
    const text = await res.body.text()
    let parsed: unknown
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = { error: text.trim().split('\n')[0] }
    }
    return { status: res.statusCode, body: parsed }
  } catch (err) {
    throw new AgentUnreachable(
      `no agent answers on ${ref.admin} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
    )
  }
}

/** The first agent that answers, with its answer; none: a one-line error naming what was tried. */
export async function firstAgent(
  refs: AgentRef[],
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown
): Promise<{ ref: AgentRef; answer: Answer }> {
  const tried: string[] = []
  for (const ref of refs) {
    try {
      return { ref, answer: await callAgent(ref, method, path, body) }
    } catch (err) {
      if (!(err instanceof AgentUnreachable)) throw err
      tried.push(err.message)
    }
  }
  throw new UsageError(
    `${tried.join('; ')}: run this on a host with an allocator or proxy, or name one with --agent HOST:PORT`,
    1
  )
}

/** Every agent that answers, with its answer (at least one, else the error of firstAgent). */
export async function everyAgent(
  refs: AgentRef[],
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown
): Promise<Array<{ ref: AgentRef; answer: Answer }>> {
  const out: Array<{ ref: AgentRef; answer: Answer }> = []
  const tried: string[] = []
  for (const ref of refs) {
    try {
      out.push({ ref, answer: await callAgent(ref, method, path, body) })
    } catch (err) {
      if (!(err instanceof AgentUnreachable)) throw err
      tried.push(err.message)
    }
  }
  if (out.length === 0)
    throw new UsageError(
      `${tried.join('; ')}: run this on a host with an allocator or proxy, or name one with --agent HOST:PORT`,
      1
    )
  return out
}
