// The allocator's side of its watchdog (./reaper.ts): starts it as a detached child of this same executable, holding
// the write end of its stdin, and says farewell on a clean stop. A death of any kind (SIGKILL, a crash) closes the
// pipe, and the watchdog removes what this allocator left behind. Also the pid file a successor is recognised by.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { selfCommand } from '../util/self.js'
import type { Logger } from '../util/log.js'
import { procStart } from './runtime/process.js'
import { WATCHDOG_ARG, runningAllocator, type Farewell, type WatchdogArgs } from './reaper.js'
import { dirname } from 'node:path'

/**
 * What of the allocator's environment the watchdog gets: enough to run and to find the Docker engine, never the PSK
 * or anything else the allocator was given.
 */
const PASSED_ENV = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']

export class Watchdog {
  private released = false

  private constructor(
    private readonly child: ChildProcess,
    log: Logger
  ) {
    child.once('exit', (code, signal) => {
      if (!this.released)
        log.warn(
          `the watchdog exited (${signal ?? `code ${String(code)}`}): if this allocator is killed, its instances stay`
        )
    })
  }

  /**
   * Starts the watchdog; undefined (and a warning) when it cannot run: the allocator runs on without it, as it would
   * have before, its next start still adopting or removing what it left.
   */
  static start(args: Omit<WatchdogArgs, 'pid' | 'procStart'>, log: Logger): Watchdog | undefined {
    const [cmd, ...pre] = selfCommand()
    const full: WatchdogArgs = { ...args, pid: process.pid, procStart: procStart(process.pid) ?? '' }
    let child: ChildProcess
    try {
      child = spawn(cmd, [...pre, WATCHDOG_ARG, JSON.stringify(full)], {
        // Its own session: a Ctrl-C meant for the allocator's group does not stop it too.
        detached: true,
        // Not the allocator's stdout/stderr: whoever reads those sees their end when the allocator ends.
        stdio: ['pipe', 'ignore', 'ignore'],
        cwd: '/',
        env: Object.fromEntries(PASSED_ENV.flatMap(k => (process.env[k] !== undefined ? [[k, process.env[k]]] : [])))
      })
    } catch (err) {
      log.warn(`cannot start the watchdog: ${(err as Error).message}; if this allocator is killed, its instances stay`)
      return undefined
    }
    child.once('error', err => {
      log.warn(`cannot start the watchdog: ${err.message}; if this allocator is killed, its instances stay`)
    })
    child.stdin?.on('error', () => {})
    // Neither the child nor its pipe keeps this process alive.
    child.unref()
    ;(child.stdin as unknown as { unref?: () => void } | null)?.unref?.()
    return new Watchdog(child, log)
  }

  /** A clean stop: `stopped` (nothing left to remove) or `kept` (--keep-instances: removed after the grace). */
  release(farewell: Farewell): void {
    if (this.released) return
    this.released = true
    this.child.stdin?.end(`${farewell}\n`)
  }
}

/** Records this process as the running allocator of its identity (for an old watchdog in its grace). */
export function writePidFile(file: string, log: Logger): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    writeFileSync(file, JSON.stringify({ pid: process.pid, procStart: procStart(process.pid) ?? '' }) + '\n', {
      mode: 0o600
    })
  } catch (err) {
    log.warn(`cannot write ${file}: ${(err as Error).message}`)
  }
}

/** Removes the pid file if it still names this process. */
export function removePidFile(file: string): void {
  if (runningAllocator(file)?.pid === process.pid) rmSync(file, { force: true })
}
