// Test helpers for real child processes of the CLI: spawn, wait for a log line, run
// to completion, and kill everything that a test started (by PID) when it ends; and
// what a test asks of any process by PID (alive, its children).
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'
import { noteSpawned, removeRecordOf } from './orphans.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
/** The CLI under test: bin/physarum by default, the packaged executable with PHYSARUM_BIN. */
export const BIN = process.env.PHYSARUM_BIN ?? resolve(ROOT, 'bin/physarum')

const children = new Set<ChildProcess>()

export interface Daemon {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

function command(args: string[], bin = BIN): [string, string[]] {
  return bin.endsWith('.js') || bin.endsWith('.mjs') || bin.endsWith('/bin/physarum')
    ? [process.execPath, [bin, ...args]]
    : [bin, args]
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** another executable (default BIN) */ bin?: string
}

export function spawnCli(args: string[], opts: SpawnOptions = {}): Daemon {
  const [cmd, argv] = command(args, opts.bin)
  const env = { ...process.env, ...opts.env }
  const child = spawn(cmd, argv, {
    cwd: opts.cwd ?? ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.add(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve => {
    child.on('exit', (code, signal) => {
      children.delete(child)
      // Killed, it could not remove its runtime-dir record: the inert file goes, as the next reader (members) would
      // drop it. Any other end must have removed it itself (helpers/orphans.ts checks).
      if (signal === 'SIGKILL' && child.pid !== undefined) removeRecordOf(child.pid)
      resolve({ code, signal })
    })
  })
  // helpers/orphans.ts: what it leaves is checked at the end of the suite.
  noteSpawned({ pid: child.pid, env, stderr: () => err })
  const waitFor = async (re: RegExp, timeoutMs = 15000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const m = re.exec(err) ?? re.exec(out)
      if (m !== null) return m
      if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before ${re}: ${err}`)
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    throw new Error(`timed out waiting for ${re}; stderr so far:\n${err}`)
  }
  return { child, stdout: () => out, stderr: () => err, waitFor, exited }
}

export async function runCli(
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {}
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const d = spawnCli(args, opts)
  const timer = setTimeout(() => {
    d.child.kill('SIGKILL')
  }, opts.timeoutMs ?? 30000)
  const { code } = await d.exited
  clearTimeout(timer)
  return { code, stdout: d.stdout(), stderr: d.stderr() }
}

/** How a process ended, or 'timeout' if it is still running after `ms`. */
export async function exitWithin(
  d: Daemon,
  ms: number
): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'timeout'>(resolve => {
    timer = setTimeout(() => {
      resolve('timeout')
    }, ms)
  })
  try {
    return await Promise.race([d.exited, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Whether the process `pid` exists (signal 0; EPERM means it exists, as another user's).
 * A PID that is not a positive integer throws: kill(0) and kill(-1) address a group or
 * every process, and NaN is a lookup that failed, so none of them may read as an answer.
 */
export function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new TypeError(`not a process ID: ${pid}`)
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** PIDs whose parent is `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e))
    } catch {}
  }
  return out
}

/** How long killAll lets a child stop on SIGTERM (ms): a daemon without work in flight stops well within it. */
const KILL_GRACE_MS = 2000

/**
 * Stops every child still running: SIGTERM first (SIGCONT before it, for stopped ones), so that a daemon stops as it
 * would under systemd and removes what it made; SIGKILL after KILL_GRACE_MS (what a killed one leaves running,
 * helpers/orphans.ts still sees).
 */
export async function killAll(graceMs = KILL_GRACE_MS): Promise<void> {
  await Promise.all(
    [...children].map(async c => {
      if (c.exitCode !== null || c.signalCode !== null) return
      const gone = new Promise(resolve => c.once('exit', resolve))
      try {
        c.kill('SIGCONT')
        c.kill('SIGTERM')
      } catch {}
      const timer = setTimeout(() => {
        try {
          c.kill('SIGKILL')
        } catch {}
      }, graceMs)
      await gone
      clearTimeout(timer)
    })
  )
}

process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL')
    } catch {}
  }
})
