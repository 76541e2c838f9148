// Renders the cluster's apps for people: one line per app, then one per instance.
import type { AppView } from '../../cluster/apps.js'
import { shortPeer } from '../../cluster/membership/membership.js'

function table(rows: string[][], indent = ''): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  return rows.map(r => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n')
}

function scaleOf(a: AppView): string {
  if (a.scale === null) return '-'
  return `min ${a.scale.min}${a.scale.max !== undefined ? ` max ${a.scale.max}` : ''}`
}

const rtt = (ms: number | null): string => (ms === null ? '?' : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`)

function instances(a: AppView): string {
  if (a.instances.length === 0) return '  (no instance)'
  const rows = [['INSTANCE', 'HOST', 'ADDRESS', 'STATE', 'IN FLIGHT', 'RTT']]
  for (const i of a.instances)
    rows.push([
      i.id,
      `${shortPeer(i.peer)} (${i.hostRole}${i.hostStatus !== 'alive' ? `, ${i.hostStatus}` : ''})`,
      i.address ?? '-',
      i.state,
      i.inFlight === null ? '?' : String(i.inFlight),
      rtt(i.rttMs)
    ])
  return table(rows, '  ')
}

/** Every app: a summary line each (one set of columns for all), with its instances below. */
export function formatApps(apps: AppView[]): string {
  if (apps.length === 0) return 'no app: no member lists one in its catalog or hosts an instance\n'
  const rows = [
    ['APP', 'RUNS ON', 'SCALE', 'READY', 'STARTING'],
    ...apps.map(a => [
      a.app,
      a.runsOn.length === 0 ? '-' : `${a.runsOn.length} allocator${a.runsOn.length === 1 ? '' : 's'}`,
      scaleOf(a),
      String(a.ready),
      String(a.starting)
    ])
  ]
  const lines = table(rows).split('\n')
  const out = [lines[0]]
  apps.forEach((a, i) => {
    out.push(lines[i + 1], instances(a))
  })
  return out.join('\n') + '\n'
}

/** One app in detail. */
export function formatApp(a: AppView): string {
  const lines = [
    `app       ${a.app}`,
    `runs on   ${a.runsOn.length === 0 ? '- (no allocator lists it)' : a.runsOn.map(r => `${shortPeer(r.peer)} (${r.status})`).join(', ')}`,
    `scale     ${scaleOf(a)}${a.scale !== null ? ` (set ${a.scale.setAt} by ${shortPeer(a.scale.by)})` : ''}`,
    `instances ${a.ready} ready, ${a.starting} starting`
  ]
  return lines.join('\n') + '\n' + instances(a) + '\n'
}
