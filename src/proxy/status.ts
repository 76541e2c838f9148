// The proxy's status page at /: apps seen, instances with RTT and state, allocations in
// flight, recent errors — as JSON, or as a small HTML page for people.
import type { Agent } from '../cluster/agent.js'
import type { Placement } from './placement.js'
import { RECENT_ERRORS } from './constants.js'

export interface RecentError {
  at: string
  app: string
  status: number
  message: string
}

/** The last errors the proxy answered with, newest first. */
export class RecentErrors {
  readonly list: RecentError[] = []

  record(app: string, status: number, message: string): void {
    this.list.unshift({ at: new Date().toISOString(), app, status, message })
    if (this.list.length > RECENT_ERRORS) this.list.length = RECENT_ERRORS
  }
}

export interface ProxyStatus {
  peer: string
  members: number
  apps: Array<{
    app: string
    instances: Array<{ instance: string; peer: string; rttMs: number | null; load: number; local: boolean }>
    allocators: number
  }>
  allocationsInFlight: string[]
  recentErrors: RecentError[]
}

export function statusJson(agent: Agent, placement: Placement, recentErrors: RecentError[]): ProxyStatus {
  const members = agent.membership.members().filter(m => m.status === 'alive')
  const names = new Set<string>()
  for (const m of members) {
    for (const a of m.announcement.catalog) names.add(a)
    for (const a of Object.keys(m.announcement.instances)) names.add(a)
  }
  const apps = [...names].sort().map(app => ({
    app,
    instances: placement.endpoints(app).map(e => ({
      instance: e.instance,
      peer: e.peer,
      rttMs: Number.isFinite(e.rttMs) ? Number(e.rttMs.toFixed(3)) : null,
      load: e.announcedLoad,
      local: e.local
    })),
    allocators: members.filter(m => m.announcement.roles.includes('allocator') && m.announcement.catalog.includes(app))
      .length
  }))
  return {
    peer: agent.peer,
    members: members.length,
    apps,
    allocationsInFlight: [...placement.inFlightAllocations],
    recentErrors
  }
}

const esc = (s: string): string => s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

export function statusHtml(s: ProxyStatus): string {
  const rows = s.apps.flatMap(a =>
    a.instances.length === 0
      ? [`<tr><td>${esc(a.app)}</td><td colspan="4">no instance (${a.allocators} allocator(s) can start one)</td></tr>`]
      : a.instances.map(
          i =>
            `<tr><td>${esc(a.app)}</td><td>${esc(i.instance)}</td><td title="${esc(i.peer)}">…${esc(i.peer.slice(-8))}</td><td>${i.rttMs === null ? '?' : i.rttMs.toFixed(2)}</td><td>${i.load.toFixed(1)}</td></tr>`
        )
  )
  const errors = s.recentErrors
    .map(e => `<li><code>${esc(e.at)}</code> ${esc(e.app)} ${e.status}: ${esc(e.message)}</li>`)
    .join('')
  return `<!doctype html><html><head><meta charset="utf-8"><title>physarum proxy</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}code{font-size:12px}</style></head>
<body><h1>physarum proxy</h1><p>peer <code>${esc(s.peer)}</code> · ${s.members} live member(s) · <a href="/_physarum/members">members</a> · <a href="/_physarum/metrics">metrics</a></p>
<h2>Apps and instances</h2><table><tr><th>app</th><th>instance</th><th>host</th><th>RTT (ms)</th><th>load</th></tr>${rows.join('') || '<tr><td colspan="5">no app seen yet</td></tr>'}</table>
<h2>Allocations in flight</h2><p>${s.allocationsInFlight.map(esc).join(', ') || 'none'}</p>
<h2>Recent errors</h2><ul>${errors || '<li>none</li>'}</ul></body></html>
`
}
