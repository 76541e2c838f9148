// The watchdog's own side (`physarum __watchdog`, a hidden mode of this executable): it holds a pipe from its
// allocator and, when that closes without a clean stop, removes that allocator's instances (containers by its label,
// processes from its state file): an ephemeral allocator's at once, a persistent one's after Allocator.ReapGraceS
// unless an allocator with the same identity started meanwhile (it adopts them). No other identity's are touched.
import { appendFileSync, readFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { REAP_STOP_GRACE_MS, REAP_SWEEP_AGAIN_MS, REAP_TIMEOUT_MS, WATCHDOG_POLL_MS } from './constants.js'
import { procStart } from './runtime/process.js'
import type { Runtime } from './runtime/runtime.js'
import { createLogger } from '../util/log.js'

/** The first argument that selects the watchdog mode (main.ts), before oclif loads. */
export const WATCHDOG_ARG = '__watchdog'

/** What the allocator writes into the pipe before it closes it on a clean stop. */
export type Farewell = 'stopped' | 'kept'

export interface WatchdogArgs {
  /** The allocator's peer ID: the only identity whose instances are ever touched. */
  peer: string
  /** The allocator's pid and /proc start time (a reused pid is not the allocator). */
  pid: number
  procStart: string
  runtime: 'docker' | 'process'
  /** The process runtime's state file (absolute). */
  stateFile: string
  /** Where a running allocator of this identity records its pid (absolute; persistent only). */
  pidFile?: string
  ephemeral: boolean
  graceMs: number
  /** What was reaped is appended here (the allocator's stderr is gone by then). */
  logFile: string
}

export interface PidRecord {
  pid: number
  procStart: string
}

/** The allocator of this identity that runs now, from its pid file; undefined when none does. */
export function runningAllocator(pidFile: string): PidRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(pidFile, 'utf8')) as Partial<PidRecord>
    if (typeof rec.pid !== 'number' || typeof rec.procStart !== 'string') return undefined
    return procStart(rec.pid) === rec.procStart ? (rec as PidRecord) : undefined
  } catch {
    return undefined
  }
}

function parseArgs(json: string | undefined): WatchdogArgs {
  const a = JSON.parse(json ?? '') as WatchdogArgs
  if (typeof a.peer !== 'string' || a.peer === '' || typeof a.pid !== 'number' || typeof a.stateFile !== 'string')
    throw new Error('bad watchdog arguments')
  return a
}

/** Until the pipe closes (or, as a fallback, the allocator is seen gone): the last farewell line, if any. */
async function awaitEnd(a: WatchdogArgs): Promise<Farewell | undefined> {
  let farewell: Farewell | undefined
  let ended = false
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line === 'stopped' || line === 'kept') farewell = line
  })
  const end = (): void => {
    ended = true
  }
  process.stdin.once('end', end)
  process.stdin.once('error', end)
  process.stdin.once('close', end)
  // Without the allocator's start time (no /proc), only the pipe tells: a pid alone may be reused.
  const gone = (): boolean => a.procStart !== '' && procStart(a.pid) !== a.procStart
  while (!ended && !gone()) await sleep(WATCHDOG_POLL_MS)
  return farewell
}

async function runtimeOf(a: WatchdogArgs, log: ReturnType<typeof createLogger>): Promise<Runtime> {
  if (a.runtime === 'docker') {
    const { DockerRuntime } = await import('./runtime/docker.js')
    return new DockerRuntime({ peer: a.peer, log })
  }
  const { ProcessRuntime } = await import('./runtime/process.js')
  return new ProcessRuntime({ stateFile: a.stateFile, log })
}

/** Removes every instance the allocator `a.peer` left; returns how many. */
async function reap(
  a: WatchdogArgs,
  why: string,
  note: (line: string) => void,
  successor: () => boolean
): Promise<number> {
  const log = createLogger({ silent: true })
  const runtime = await runtimeOf(a, log)
  let n = 0
  const sweep = async (): Promise<void> => {
    const what = a.runtime === 'docker' ? 'container' : 'process group'
    await Promise.all(
      (await runtime.listOwn()).map(async inst => {
        // A successor that started in the last moment adopts what is still there.
        if (successor()) return
        await runtime.stop(inst, { graceMs: REAP_STOP_GRACE_MS })
        n++
        note(`removed ${what} ${inst.handle.slice(0, 12)} (instance ${inst.id} of ${inst.app || '?'}): ${why}`)
      })
    )
  }
  await sweep()
  // Docker only: a create that was on its way shows up late. Processes are all in the state file already.
  if (a.runtime === 'docker') {
    await sleep(REAP_SWEEP_AGAIN_MS)
    await sweep()
  }
  await runtime.close()
  return n
}

/** The watchdog's whole life; it exits when it is done. */
export async function runWatchdog(json: string | undefined): Promise<void> {
  let a: WatchdogArgs
  try {
    a = parseArgs(json)
  } catch (err) {
    process.stderr.write(`physarum watchdog: ${(err as Error).message}\n`)
    process.exitCode = 2
    return
  }
  // Its own session (detached): no terminal signal reaches it, and the allocator's SIGHUP is not for it.
  process.on('SIGHUP', () => {})
  process.on('SIGINT', () => {})
  const note = (line: string): void => {
    try {
      appendFileSync(a.logFile, `${new Date().toISOString()} watchdog of ${a.peer}: ${line}\n`, { mode: 0o600 })
    } catch {}
  }
  const farewell = await awaitEnd(a)
  process.stdin.destroy()
  if (farewell === 'stopped') return
  let why = 'its allocator died (--ephemeral: it never comes back for them)'
  const successor = (): boolean => {
    if (a.pidFile === undefined) return false
    const rec = runningAllocator(a.pidFile)
    return rec !== undefined && rec.pid !== a.pid
  }
  if (!a.ephemeral) {
    why = `its allocator ${farewell === 'kept' ? 'left them running' : 'died'} and did not start again within ${a.graceMs / 1000} s`
    const deadline = Date.now() + a.graceMs
    while (Date.now() < deadline && !successor()) await sleep(WATCHDOG_POLL_MS)
    // A successor adopts what is left: not ours to remove.
    if (successor()) return
  }
  const timeout = sleep(REAP_TIMEOUT_MS, 'timeout' as const)
  try {
    const r = await Promise.race([reap(a, why, note, successor), timeout])
    if (r === 'timeout') note(`gave up after ${REAP_TIMEOUT_MS / 1000} s (the Docker engine does not answer?)`)
  } catch (err) {
    note(`cannot remove the instances: ${(err as Error).message}`)
  }
  if (a.pidFile !== undefined && runningAllocator(a.pidFile) === undefined) rmSync(a.pidFile, { force: true })
  process.exit(0)
}
