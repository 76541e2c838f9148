// "Nothing is orphaned", checked by the test: a suite calls assertNothingLeft() at the end of its `after` hook (after
// its own cleanup) and fails if anything it started is still there:
// - a process: every descendant of this test process (the CLI daemons it spawned, their instances and watchdogs, the
//   instances of in-process allocators) is sampled from /proc while the suite runs, and each one seen must be gone
//   (by PID and start time, never by name);
// - a record of a spawned daemon (or of this process) in its runtime directory (cluster/local-agents.ts);
// - a Docker container labelled with the peer ID of one of the suite's allocators (spawned ones read from their
//   logs, in-process ones named by the suite).
// What it finds is removed (by PID, by label) before the assertion fails, so that a failure leaves nothing either.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * How often the process tree is sampled (ms): an instance lives far longer; one sample of /proc costs ~4.5 ms of CPU
 * with 160 processes.
 */
const SAMPLE_MS = 500

/** How long what was seen may take to go after the suite's cleanup (ms): a watchdog reaps within a second or two. */
const GONE_WITHIN_MS = 4000

interface Seen {
  start: string
  cmd: string
}

const seen = new Map<number, Seen>()

/** pid → [ppid, start time, state] of every process, from /proc/PID/stat. */
function processTable(): Map<number, [number, string, string]> {
  const out = new Map<number, [number, string, string]>()
  for (const e of readdirSync('/proc')) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // Fields after the name: state (3), ppid (4), ..., starttime (22).
      out.set(Number(e), [Number(f[1]), f[19], f[0]])
    } catch {}
  }
  return out
}

function cmdOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200)
  } catch {
    return '?'
  }
}

/** Records every descendant of this process now alive. */
function sample(): void {
  const table = processTable()
  const kids = new Map<number, number[]>()
  for (const [pid, [ppid]] of table) kids.set(ppid, [...(kids.get(ppid) ?? []), pid])
  const todo = [...(kids.get(process.pid) ?? [])]
  while (todo.length > 0) {
    const pid = todo.pop() as number
    const row = table.get(pid)
    if (row === undefined) continue
    if (!seen.has(pid) || seen.get(pid)?.start !== row[1]) seen.set(pid, { start: row[1], cmd: cmdOf(pid) })
    todo.push(...(kids.get(pid) ?? []))
  }
}

let sampler: NodeJS.Timeout | undefined

/**
 * Starts sampling this process's descendants (once; cheap, and it never keeps the process alive). Spawning a CLI
 * (helpers/cli.ts) and starting an in-process allocator (helpers/cluster.ts) call it; a suite that starts processes
 * otherwise calls it first.
 */
export function watchProcesses(): void {
  if (sampler !== undefined) return
  sampler = setInterval(sample, SAMPLE_MS)
  sampler.unref()
}

/** A CLI process this test process spawned, with its environment (for its runtime-dir record and its log). */
export interface Spawned {
  pid?: number
  env: NodeJS.ProcessEnv
  stderr: () => string
}
const spawned: Spawned[] = []
const inProcessDocker = new Set<string>()

export function noteSpawned(s: Spawned): void {
  spawned.push(s)
  watchProcesses()
  sample()
}

/** An allocator started in this process: its instances are this process's children, its containers carry its peer. */
export function noteAllocator(peer: string, runtime: string): void {
  if (runtime !== 'process') inProcessDocker.add(peer)
  watchProcesses()
}

function spawnedDaemons(): readonly Spawned[] {
  return spawned
}

/** Seen processes still running (same PID and start time, not a zombie). */
function stillRunning(): Array<[number, Seen]> {
  const table = processTable()
  return [...seen].filter(([pid, s]) => {
    const row = table.get(pid)
    return row !== undefined && row[1] === s.start && row[2] !== 'Z'
  })
}

/** As cluster/local-agents.ts resolves it, for another process's environment. */
function runtimeDirOf(env: NodeJS.ProcessEnv): string {
  if (env.PHYSARUM_RUNTIME_DIR !== undefined && env.PHYSARUM_RUNTIME_DIR !== '') return env.PHYSARUM_RUNTIME_DIR
  if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== '') return join(env.XDG_RUNTIME_DIR, 'physarum')
  return join(env.HOME ?? homedir(), '.physarum', 'run')
}

/** Removes the runtime-dir record of a spawned daemon that was killed (SIGKILL: it could not remove it itself). */
export function removeRecordOf(pid: number): void {
  const d = spawned.find(x => x.pid === pid)
  if (d !== undefined) rmSync(join(runtimeDirOf(d.env), `${pid}.json`), { force: true })
}

/** Runtime-dir records of the spawned daemons and of this process still there. */
function records(): string[] {
  const files = spawnedDaemons().flatMap(d => (d.pid !== undefined ? [join(runtimeDirOf(d.env), `${d.pid}.json`)] : []))
  files.push(join(runtimeDirOf(process.env), `${process.pid}.json`))
  return [...new Set(files)].filter(f => existsSync(f))
}

/** Allocators of the suite that run Docker instances: the spawned ones say so in their log. */
function dockerPeers(extra: string[]): string[] {
  const out = new Set([...extra, ...inProcessDocker])
  for (const d of spawnedDaemons()) {
    const log = d.stderr()
    const peer = /allocator (\w+) started/.exec(log)?.[1]
    if (peer !== undefined && /runtime docker/.test(log)) out.add(peer)
  }
  return [...out]
}

/** Container IDs (with their allocator) labelled physarum.allocator=one of `peers`, in one `docker ps`. */
function containersOf(peers: string[]): string[] {
  if (peers.length === 0) return []
  const r = spawnSync(
    'docker',
    ['ps', '-a', '--filter', 'label=physarum.allocator', '--format', '{{.ID}} {{.Label "physarum.allocator"}}'],
    { encoding: 'utf8', timeout: 10000 }
  )
  if (r.status !== 0) return []
  const want = new Set(peers)
  return r.stdout
    .split('\n')
    .map(l => l.trim().split(' '))
    .filter(([id, peer]) => id !== '' && want.has(peer))
    .map(([id, peer]) => `${id} ${peer}`)
}

export interface NothingLeftOptions {
  /** More peer IDs of allocators with the Docker runtime (spawned ones are found in their logs, helpers' noted). */
  dockerPeers?: string[]
  /** How long what was seen may take to go (ms). */
  withinMs?: number
}

/**
 * For the end of a suite's `after` hook: waits (bounded) until nothing the suite started is left, then asserts it.
 * What is left is removed first, so a failing check still cleans up.
 */
export async function assertNothingLeft(opts: NothingLeftOptions = {}): Promise<void> {
  sample()
  const peers = dockerPeers(opts.dockerPeers ?? [])
  const deadline = Date.now() + (opts.withinMs ?? GONE_WITHIN_MS)
  let procs = stillRunning()
  let files = records()
  let containers = containersOf(peers)
  while ((procs.length > 0 || files.length > 0 || containers.length > 0) && Date.now() < deadline) {
    await sleep(100)
    procs = stillRunning()
    files = records()
    if (containers.length > 0) containers = containersOf(peers)
  }
  for (const [pid] of procs) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  for (const f of files) rmSync(f, { force: true })
  if (containers.length > 0)
    spawnSync('docker', ['rm', '-f', ...containers.map(c => c.split(' ')[0])], { stdio: 'ignore', timeout: 30000 })
  seen.clear()
  assert.deepEqual(
    {
      processes: procs.map(([pid, s]) => `${pid} ${s.cmd}`),
      records: files,
      containers
    },
    { processes: [], records: [], containers: [] },
    'nothing that the suite started may be left after it'
  )
}
