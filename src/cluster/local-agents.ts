// The daemons of this user on this host, so that several proxies and an allocator share a
// host with default flags and `physarum members` still finds one without --agent: every
// agent writes one small file (its pid, role, peer and admin address) into a per-user
// runtime directory while it runs, and removes it when it stops. An entry whose process is
// gone (killed) is ignored and removed by the next reader.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

export interface LocalAgent {
  pid: number
  role: string
  peer: string
  /** HOST:PORT of its admin API (a proxy without one answers under its HTTP port at /_physarum/). */
  admin?: string
  /** A proxy's HTTP entrypoint, HOST:PORT. */
  http?: string
  /** Its admin token's file, which the CLI reads for a state-changing call (cluster/admin/token.ts). */
  tokenFile?: string
  startedAt: string
}

/**
 * $PHYSARUM_RUNTIME_DIR, else $XDG_RUNTIME_DIR/physarum (systemd's per-user tmpfs: gone at
 * logout, like the daemons), else ~/.physarum/run.
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PHYSARUM_RUNTIME_DIR !== undefined && env.PHYSARUM_RUNTIME_DIR !== '') return env.PHYSARUM_RUNTIME_DIR
  if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== '') return join(env.XDG_RUNTIME_DIR, 'physarum')
  return join(homedir(), '.physarum', 'run')
}

const fileOf = (dir: string, pid: number): string => join(dir, `${pid}.json`)

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    // ESRCH: gone. EPERM: another user's process has the pid now: not ours either.
    return false
  }
}

/** Records this process's agent, best effort (a read-only home must not stop a daemon); returns its file. */
export function registerLocal(agent: Omit<LocalAgent, 'pid' | 'startedAt'>, dir = runtimeDir()): string | undefined {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const file = fileOf(dir, process.pid)
    const entry: LocalAgent = { pid: process.pid, startedAt: new Date().toISOString(), ...agent }
    writeFileSync(file, JSON.stringify(entry) + '\n', { mode: 0o600 })
    return file
  } catch {
    return undefined
  }
}

export function unregisterLocal(file: string | undefined): void {
  if (file !== undefined) rmSync(file, { force: true })
}

/** The agents that run now: allocators first (they have the widest view), then by start time. */
export function localAgents(dir = runtimeDir()): LocalAgent[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter(n => /^\d+\.json$/.test(n))
  } catch {
    return []
  }
  const out: LocalAgent[] = []
  for (const name of names) {
    const file = join(dir, name)
    let entry: LocalAgent | undefined
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalAgent>
      if (typeof v.pid === 'number' && typeof v.role === 'string' && typeof v.peer === 'string') entry = v as LocalAgent
    } catch {}
    if (entry === undefined || !alive(entry.pid)) {
      rmSync(file, { force: true })
      continue
    }
    out.push(entry)
  }
  const rank = (a: LocalAgent): number => (a.role === 'allocator' ? 0 : 1)
  return out.sort((a, b) => rank(a) - rank(b) || (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0))
}
