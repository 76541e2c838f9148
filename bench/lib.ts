// Shared pieces of the benchmarks: statistics, the machine description, starting and waiting for processes, and the
// results file that docs/BENCHMARKS.md is rendered from.
import { spawn, type ChildProcess } from 'node:child_process'
import { cpus, totalmem, release } from 'node:os'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const RESULTS = resolve(ROOT, 'bench/results.json')

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

export function machine(): string {
  const c = cpus()
  return `${c[0]?.model ?? 'unknown CPU'} × ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}`
}

export interface SuiteResult {
  title: string
  ranAt: string
  machine: string
  /** Markdown body: tables and notes. */
  markdown: string
  /** Raw figures, for machines. */
  data: Record<string, unknown>
}

export function saveResult(key: string, r: SuiteResult): void {
  const all = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, SuiteResult>) : {}
  all[key] = r
  mkdirSync(dirname(RESULTS), { recursive: true })
  writeFileSync(RESULTS, JSON.stringify(all, null, 2) + '\n')
  renderDoc(all)
}

const ORDER = ['membership', 'membership-soak', 'allocation', 'forwarding', 'traffic', 'startup']

export function renderDoc(all: Record<string, SuiteResult>): void {
  const keys = Object.keys(all).sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99))
  let md =
    '# Benchmarks\n\nFigures from `npm run bench` (one suite: `npm run bench -- <suite>`). Each section says when and on which machine it ran. Medians unless said otherwise; every comparison ran side by side in one run.\n\n'
  for (const k of keys) {
    const r = all[k]
    md += `## ${r.title}\n\n_Ran ${r.ranAt} on ${r.machine}._\n\n${r.markdown.trim()}\n\n`
  }
  writeFileSync(resolve(ROOT, 'docs/BENCHMARKS.md'), md)
}

export const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a')

/** Starts a process whose stderr is read (waitLine) and records it in `procs`, so that the suite ends it. */
export function startTracked(
  procs: ChildProcess[],
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {}
): ChildProcess {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  procs.push(p)
  return p
}

/** The first match of `re` in what the process wrote to stderr, within `timeoutMs`. */
export async function waitLine(p: ChildProcess, re: RegExp, timeoutMs = 20000): Promise<RegExpExecArray> {
  let buf = ''
  return await new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new Error(`timed out waiting for ${re}: ${buf}`))
    }, timeoutMs)
    p.stderr?.on('data', (d: Buffer) => {
      buf += d.toString()
      const m = re.exec(buf)
      if (m !== null) {
        clearTimeout(t)
        resolve(m)
      }
    })
  })
}

/** CPU time (user + system) a process has used, in µs, from /proc (10 ms ticks); NaN once it is gone. */
export function cpuUs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid ?? 0}/stat`, 'utf8')
      .split(') ')[1]
      .split(' ')
    return (Number(f[11]) + Number(f[12])) * 10000
  } catch {
    return NaN
  }
}
