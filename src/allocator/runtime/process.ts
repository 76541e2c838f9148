// The local-process runtime: the app's Command in its own process group, with PORT set
// to a port reserved on 127.0.0.1 and a minimal environment (the catalog's Env only:
// never the allocator's own, which may hold the PSK). A state file lets an allocator
// that was killed find, adopt or stop its processes when it starts again; an allocator
// that will never come back for them (--ephemeral) has them die with it instead.
import { STOP_GRACE_MS } from '../constants.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import {
  accessSync,
  constants as fsConstants,
  readFileSync,
  writeFileSync,
  mkdirSync,
  renameSync,
  rmSync
} from 'node:fs'
import { delimiter, dirname, isAbsolute, join } from 'node:path'
import { resolveCommand } from '../../util/self.js'
import type { AppSpec } from '../../catalog/catalog.js'
import type { Logger } from '../../util/log.js'
import { StartError, logLines, type Runtime, type RuntimeEvent, type RuntimeInstance } from './runtime.js'
import { setTimeout as sleep } from 'node:timers/promises'

interface Entry extends RuntimeInstance {
  pid: number
  procStart: string
}

/** The path of an executable: `name` itself when it has a slash (relative to `cwd`), else found on `path`. */
function findExecutable(name: string, path = process.env.PATH ?? '', cwd = process.cwd()): string | undefined {
  const candidates = name.includes('/')
    ? [isAbsolute(name) ? name : join(cwd, name)]
    : path
        .split(delimiter)
        .filter(d => d !== '')
        .map(d => join(d, name))
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK)
      return c
    } catch {}
  }
  return undefined
}

/** A free port on 127.0.0.1, chosen by the kernel. */
export async function reservePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => {
        resolve(port)
      })
    })
  })
}

/** The start time of a process from /proc (guards against PID reuse); undefined when gone. */
export function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const
  private readonly entries = new Map<string, Entry>()
  private readonly children = new Map<string, ChildProcess>()
  private readonly listeners: Array<(e: RuntimeEvent) => void> = []

  /** setpriv (util-linux), when the instances are to die with this process. */
  private readonly setpriv?: string

  constructor(
    private readonly opts: {
      stateFile: string
      log: Logger
      cwd?: string
      /**
       * The instances get SIGKILL when this process dies, however it dies (SIGKILL, a crash):
       * the kernel's parent-death signal, set by util-linux's setpriv before it execs the app.
       */
      dieWithParent?: boolean
    }
  ) {
    if (opts.dieWithParent === true) {
      this.setpriv = findExecutable('setpriv')
      if (this.setpriv === undefined)
        opts.log.warn('setpriv (util-linux) not found: instances will outlive this allocator if it is killed')
    }
  }

  /**
   * Writes the state file; a failure (disk full, permissions) is logged, never thrown, so that a start or stop still
   * completes.
   */
  private save(): void {
    try {
      mkdirSync(dirname(this.opts.stateFile), { recursive: true, mode: 0o700 })
      const tmp = `${this.opts.stateFile}.tmp`
      writeFileSync(tmp, JSON.stringify([...this.entries.values()], null, 2), { mode: 0o600 })
      renameSync(tmp, this.opts.stateFile)
    } catch (err) {
      this.opts.log.warn(
        `cannot write ${this.opts.stateFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): after a crash these instances would not be found`
      )
    }
  }

  async start(spec: AppSpec, id: string): Promise<RuntimeInstance> {
    if (spec.command === undefined || spec.command.length === 0)
      throw new StartError(`app ${spec.name} has no Command for the process runtime`)
    const port = await reservePort()
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: process.env.HOME,
      LANG: process.env.LANG ?? 'C.UTF-8',
      // Instances are reached only by the allocator (apps that honour HOST bind to loopback).
      HOST: '127.0.0.1',
      ...spec.env,
      PORT: String(port),
      PHYSARUM_APP: spec.name,
      PHYSARUM_INSTANCE: id
    }
    const [cmd, ...args] = resolveCommand(spec.command)
    let argv: [string, string[]] = [cmd, args]
    if (this.setpriv !== undefined) {
      // setpriv execs the app in place (same pid, same process group): only a missing app would
      // now show as an early exit, so it is looked for first, for the same clear error as without.
      if (findExecutable(cmd, env.PATH, this.opts.cwd) === undefined)
        throw new StartError(`cannot run ${cmd} for ${spec.name}: ENOENT`)
      argv = [this.setpriv, ['--pdeathsig', 'KILL', '--', cmd, ...args]]
    }
    const child = spawn(argv[0], argv[1], {
      detached: true,
      env,
      cwd: this.opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const spawned = await new Promise<Error | undefined>(resolve => {
      child.once('spawn', () => {
        resolve(undefined)
      })
      child.once('error', err => {
        resolve(err)
      })
    })
    if (spawned !== undefined || child.pid === undefined)
      throw new StartError(
        `cannot run ${cmd} for ${spec.name}: ${(spawned as NodeJS.ErrnoException | undefined)?.code ?? spawned?.message ?? 'no pid'}`
      )
    const log = this.opts.log.scope(`${spec.name}:${id}`)
    for (const [stream, level] of [
      [child.stdout, 'info'],
      [child.stderr, 'warn']
    ] as const) {
      if (stream !== null)
        logLines(stream, line => {
          log[level](line)
        })
    }
    const entry: Entry = {
      id,
      app: spec.name,
      host: '127.0.0.1',
      port,
      handle: String(child.pid),
      startedAt: Date.now(),
      pid: child.pid,
      procStart: procStart(child.pid) ?? ''
    }
    this.entries.set(id, entry)
    this.children.set(id, child)
    this.save()
    child.once('exit', (code, signal) => {
      this.children.delete(id)
      if (this.entries.has(id))
        this.emit({
          type: 'exited',
          id,
          reason: signal !== null ? `killed by ${signal}` : `exited with code ${String(code)}`
        })
    })
    return entry
  }

  private emit(e: RuntimeEvent): void {
    for (const l of this.listeners) l(e)
  }

  async stop(inst: RuntimeInstance, opts: { graceMs?: number } = {}): Promise<void> {
    const entry = this.entries.get(inst.id)
    const pgid = Number(inst.handle)
    this.entries.delete(inst.id)
    this.save()
    if (entry === undefined && !groupAlive(pgid)) return
    try {
      process.kill(-pgid, 'SIGTERM')
    } catch {}
    const deadline = Date.now() + (opts.graceMs ?? STOP_GRACE_MS)
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(20)
    if (groupAlive(pgid)) {
      try {
        process.kill(-pgid, 'SIGKILL')
      } catch {}
      const hard = Date.now() + 2000
      while (groupAlive(pgid) && Date.now() < hard) await sleep(20)
    }
    this.children.delete(inst.id)
  }

  async listOwn(): Promise<RuntimeInstance[]> {
    let saved: Entry[] = []
    try {
      saved = JSON.parse(readFileSync(this.opts.stateFile, 'utf8')) as Entry[]
    } catch {}
    const out: RuntimeInstance[] = []
    for (const e of saved) {
      // A PID whose start time changed belongs to another process now: not ours.
      if (procStart(e.pid) !== e.procStart) continue
      this.entries.set(e.id, e)
      out.push(e)
    }
    this.save()
    return out
  }

  async isRunning(inst: RuntimeInstance): Promise<boolean> {
    const e = this.entries.get(inst.id)
    return e !== undefined && procStart(e.pid) === e.procStart
  }

  onEvent(fn: (e: RuntimeEvent) => void): void {
    this.listeners.push(fn)
  }

  /** Nothing left to recover: the state file goes too. */
  async close(): Promise<void> {
    if (this.entries.size === 0) {
      try {
        rmSync(this.opts.stateFile, { force: true })
      } catch {}
    }
  }
}
