// Renders member rows for people (a table in the manner of `serf members`) and filters them.
import type { MemberView } from '../../cluster/agent.js'
import { shortPeer } from '../../cluster/membership/membership.js'
import { estimateRttMs, type Coordinate } from '../../cluster/coordinate/index.js'

export interface MemberFilter {
  status?: string
  role?: string
  app?: string
}

export function filterMembers(rows: MemberView[], f: MemberFilter): MemberView[] {
  const status = f.status !== undefined ? new RegExp(`^(?:${f.status})$`) : undefined
  return rows.filter(
    r =>
      (status === undefined || status.test(r.status)) &&
      (f.role === undefined || r.roles.includes(f.role)) &&
      (f.app === undefined || r.catalog.includes(f.app) || r.instances[f.app] !== undefined)
  )
}

/** host:port of the most useful address: a routable one before loopback. */
export function mainAddress(addrs: string[]): string {
  const parsed = addrs
    .map(a => /^\/ip[46]\/([^/]+)\/tcp\/(\d+)/.exec(a))
    .filter((m): m is RegExpExecArray => m !== null)
  const pick = parsed.find(m => !m[1].startsWith('127.') && m[1] !== '::1') ?? parsed[0]
  return pick === undefined ? '-' : pick[1].includes(':') ? `[${pick[1]}]:${pick[2]}` : `${pick[1]}:${pick[2]}`
}

function apps(r: MemberView): string {
  const names = new Set([...r.catalog, ...Object.keys(r.instances)])
  if (names.size === 0) return '-'
  return [...names]
    .sort()
    .map(n => (r.instances[n] !== undefined ? `${n}(${r.instances[n].ready})` : n))
    .join(',')
}

function load(r: MemberView): string {
  const c = r.capacity
  const parts: string[] = []
  const inFlight = Object.values(r.instances).reduce((s, i) => s + i.inFlight, 0)
  if (Object.keys(r.instances).length > 0) parts.push(`inflight=${inFlight}`)
  if (c.slotsFree !== undefined && c.slots !== undefined) parts.push(`slots=${c.slotsFree}/${c.slots}`)
  if (c.cpuLoad !== undefined) parts.push(`cpu=${c.cpuLoad.toFixed(2)}`)
  return parts.length > 0 ? parts.join(' ') : '-'
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  return (
    rows
      .map(r =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
          .join('  ')
          .trimEnd()
      )
      .join('\n') + '\n'
  )
}

/** A coordinate for people: its height, adjustment and error, and the first dimensions (ms). */
export function formatCoordinate(c: Coordinate): string {
  const ms = (s: number): string => (s * 1000).toFixed(3)
  return `vec=[${c.vec.map(ms).join(',')}] height=${ms(c.height)} adjustment=${ms(c.adjustment)} error=${c.error.toFixed(3)}`
}

export function formatMembers(rows: MemberView[], detailed = false): string {
  const head = ['PEER', 'ADDRESS', 'STATUS', 'ROLES', 'RTT(ms)', 'APPS', 'LOAD']
  if (detailed) head.push('EST(ms)', 'VERSION', 'LAST SEEN')
  // Estimates are from the answering agent's own coordinate (the row marked *), as `physarum rtt PEER` gives them.
  const origin = rows.find(r => r.self)?.coordinate ?? null
  const body = rows.map(r => {
    const cols = [
      shortPeer(r.peer) + (r.self ? '*' : ''),
      mainAddress(r.addrs),
      r.status,
      r.roles.join(','),
      r.rttMs === null ? '?' : r.rttMs.toFixed(2),
      apps(r),
      load(r)
    ]
    if (detailed) {
      const est =
        r.self || origin === null || r.coordinate === null || r.coordinate === undefined
          ? '-'
          : estimateRttMs(origin, r.coordinate).toFixed(2)
      cols.push(est, r.version, r.lastSeen)
    }
    return cols
  })
  let out = table([head, ...body])
  if (detailed) {
    out += '\n'
    for (const r of rows) {
      out += `${r.peer}\n${r.addrs.map(a => `  ${a}`).join('\n')}\n`
      // Rows from an agent of an older version have no coordinate field.
      out += `  coordinate ${r.coordinate === null || r.coordinate === undefined ? 'unknown yet' : formatCoordinate(r.coordinate)}\n`
    }
  }
  return out
}
