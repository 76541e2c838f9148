// `physarum service install|remove|status`: writes the systemd units (./units.ts) for the executable that runs, and
// enables, disables or reports them — through systemctl on a host where systemd runs, or as files and the
// multi-user.target.wants links alone under a test-only --root.
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import { join } from 'node:path'
import { ALLOCATOR_UNIT, PROXY_TEMPLATE, allocatorUnit, proxyUnit } from './units.js'
import { SYSTEMCTL_TIMEOUT_MS, SYSTEMD_RUNNING, UNIT_DIR, WANTS } from './constants.js'

export type ServiceRole = 'allocator' | 'proxy'

export interface ServiceTarget {
  role: ServiceRole
  /** A proxy's HTTP port: the template's instance name. */
  port: number
}

export interface ServiceOptions {
  /** Write into this directory instead of / (tests, image builds); systemctl is not used then. */
  root?: string
  /** The command line that runs physarum (default: this executable, ../util/self.ts). */
  exec: string[]
}

/** A refusal the user can act on: one line, exit 2. */
export class ServiceError extends Error {
  override name = 'ServiceError'
}

/** The unit systemctl enables: the allocator's, or one instance of the proxy template. */
export function unitName(t: ServiceTarget): string {
  return t.role === 'allocator' ? ALLOCATOR_UNIT : PROXY_TEMPLATE.replace('@', `@${t.port}`)
}

const fileName = (t: ServiceTarget): string => (t.role === 'allocator' ? ALLOCATOR_UNIT : PROXY_TEMPLATE)
const unitDir = (o: ServiceOptions): string => join(o.root ?? '/', UNIT_DIR)

function requireSystemd(o: ServiceOptions): void {
  if (o.root === undefined && !existsSync(SYSTEMD_RUNNING))
    throw new ServiceError(
      `systemd does not run on this host (no ${SYSTEMD_RUNNING}): there is nothing to install a service into; --root DIR writes the unit files into DIR instead`
    )
}

/** The ExecStart words, refused when systemd's or sh's quoting could change them. */
function execLine(exec: string[]): string {
  for (const part of exec)
    if (!/^\/[A-Za-z0-9_/.+:@-]+$/.test(part))
      throw new ServiceError(
        `cannot write a unit that runs ${JSON.stringify(part)}: a unit's command line needs an absolute path without spaces, quotes, % or $ (install the executable as /usr/local/bin/physarum)`
      )
  return exec.join(' ')
}

function fsError(err: unknown, path: string): ServiceError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EACCES' || code === 'EPERM')
    return new ServiceError(`cannot write ${path}: permission denied (run it as root, e.g. with sudo)`)
  return new ServiceError(`cannot write ${path}: ${code ?? (err as Error).message}`)
}

function systemctl(args: string[]): string {
  try {
    return execFileSync('systemctl', args, {
      encoding: 'utf8',
      timeout: SYSTEMCTL_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe']
    }).trim()
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string }
    const why = (e.stderr ?? '').trim().split('\n')[0] || e.message.split('\n')[0]
    throw new ServiceError(`systemctl ${args.join(' ')} failed: ${why}`)
  }
}

/** `systemctl is-enabled|is-active` answers with a word and a non-zero exit for "no": the word is the answer. */
function systemctlWord(args: string[]): string {
  try {
    return execFileSync('systemctl', args, { encoding: 'utf8', timeout: SYSTEMCTL_TIMEOUT_MS, stdio: 'pipe' }).trim()
  } catch (err) {
    return ((err as { stdout?: string }).stdout ?? '').trim() || 'unknown'
  }
}

/** The unit text for this executable. */
export function unitText(t: ServiceTarget, o: ServiceOptions): string {
  const exec = execLine(o.exec)
  // A development checkout in a home directory must stay readable to the proxy's unit.
  const inHome = o.exec.some(p => /^\/(home|root|run\/user)\//.test(p))
  return t.role === 'allocator'
    ? allocatorUnit({ exec, protectHome: 'read-only' })
    : proxyUnit({ exec, protectHome: inHome ? 'read-only' : 'true' })
}

/** Writes the unit file and enables (and, on a live system, starts) the unit; returns what it did, line by line. */
export function install(t: ServiceTarget, o: ServiceOptions): string[] {
  requireSystemd(o)
  const dir = unitDir(o)
  const file = join(dir, fileName(t))
  const text = unitText(t, o)
  const out: string[] = []
  try {
    mkdirSync(dir, { recursive: true })
    writeFileSync(file, text, { mode: 0o644 })
  } catch (err) {
    throw fsError(err, file)
  }
  out.push(`wrote ${file} (runs ${o.exec.join(' ')})`)
  const unit = unitName(t)
  if (o.root !== undefined) {
    // What `systemctl enable` makes: a link in the target's .wants to the unit file (for a template instance, the
    // instance's name to the template).
    const link = join(dir, WANTS, unit)
    try {
      mkdirSync(join(dir, WANTS), { recursive: true })
      rmSync(link, { force: true })
      symlinkSync(join('/', UNIT_DIR, fileName(t)), link)
    } catch (err) {
      throw fsError(err, link)
    }
    out.push(`enabled ${unit} (${link})`)
  } else {
    systemctl(['daemon-reload'])
    systemctl(['enable', '--now', unit])
    out.push(`enabled and started ${unit}`)
  }
  const conf = join(o.root ?? '/', 'etc/physarum/conf.json')
  if (!existsSync(conf))
    out.push(
      `note: ${conf} does not exist yet; the unit reads it: physarum config init --output /etc/physarum/conf.json`
    )
  return out
}

/** The proxy instances enabled now (their ports), from the target's .wants links. */
function enabledProxies(o: ServiceOptions): number[] {
  let names: string[] = []
  try {
    names = readdirSync(join(unitDir(o), WANTS))
  } catch {}
  return names
    .map(n => /^physarum-proxy@(\d+)\.service$/.exec(n)?.[1])
    .filter((p): p is string => p !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
}

/** Stops and disables the unit and removes its file (a proxy's template only when no other instance uses it). */
export function remove(t: ServiceTarget, o: ServiceOptions): string[] {
  requireSystemd(o)
  const dir = unitDir(o)
  const unit = unitName(t)
  const out: string[] = []
  const link = join(dir, WANTS, unit)
  if (o.root === undefined) {
    if (existsSync(join(dir, fileName(t)))) {
      systemctl(['disable', '--now', unit])
      out.push(`stopped and disabled ${unit}`)
    }
  } else if (isLink(link)) {
    rmSync(link, { force: true })
    out.push(`disabled ${unit}`)
  }
  const others = t.role === 'proxy' ? enabledProxies(o).filter(p => p !== t.port) : []
  const file = join(dir, fileName(t))
  if (others.length > 0) out.push(`kept ${file}: still used by ${others.map(p => `physarum-proxy@${p}`).join(', ')}`)
  else if (existsSync(file)) {
    try {
      rmSync(file)
    } catch (err) {
      throw fsError(err, file)
    }
    out.push(`removed ${file}`)
    if (o.root === undefined) systemctl(['daemon-reload'])
  }
  if (out.length === 0) out.push(`${unit} is not installed`)
  return out
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink()
  } catch {
    return false
  }
}

export interface UnitStatus {
  unit: string
  file?: string
  /** The command line in its ExecStart. */
  runs?: string
  enabled: string
  active: string
}

/** The state of the given unit, or of every physarum unit. */
export function status(t: ServiceTarget | undefined, o: ServiceOptions): UnitStatus[] {
  requireSystemd(o)
  const dir = unitDir(o)
  const targets: ServiceTarget[] =
    t !== undefined
      ? [t]
      : [{ role: 'allocator', port: 0 }, ...enabledProxies(o).map(port => ({ role: 'proxy' as const, port }))]
  return targets.map(target => {
    const unit = unitName(target)
    const file = join(dir, fileName(target))
    let runs: string | undefined
    try {
      const exec = /^ExecStart=(.*)$/m.exec(readFileSync(file, 'utf8'))?.[1]
      runs = exec?.match(/(?:exec )?(\/\S+(?: \/\S+)*) (?:allocator|proxy)\b/)?.[1]
    } catch {}
    const installed = existsSync(file)
    if (o.root !== undefined)
      return {
        unit,
        file: installed ? file : undefined,
        runs,
        enabled: isLink(join(dir, WANTS, unit)) ? `enabled` : 'disabled',
        active: '-'
      }
    return {
      unit,
      file: installed ? file : undefined,
      runs,
      enabled: systemctlWord(['is-enabled', unit]),
      active: systemctlWord(['is-active', unit])
    }
  })
}

/** The status as a table. */
export function formatStatus(rows: UnitStatus[]): string {
  const table = [
    ['UNIT', 'FILE', 'ENABLED', 'ACTIVE', 'RUNS'],
    ...rows.map(r => [r.unit, r.file ?? '(not installed)', r.enabled, r.active, r.runs ?? '-'])
  ]
  const widths = table[0].map((_, i) => Math.max(...table.map(row => row[i].length)))
  return (
    table
      .map(row =>
        row
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd()
      )
      .join('\n') + '\n'
  )
}
