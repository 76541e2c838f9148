// The cluster's apps as the member table shows them, for `physarum apps` and the admin
// API's /v1/apps (Consul's /v1/catalog/service): where each app may run (the allocators
// whose catalog lists it), its instances on every member with their address, state, load
// and the RTT to their host from here, and its scale record.
import type { ScaleRecord } from '../scale/protocol.js'
import type { AppInstances } from './membership/announcement.js'

/** What is read of a member (the agent's MemberView). */
export interface MemberView {
  peer: string
  status: string
  roles: string[]
  rttMs: number | null
  catalog: string[]
  instances: Record<string, AppInstances>
}

export interface InstanceView {
  id: string
  /** The peer that hosts it (an allocator, or the agent it is registered with). */
  peer: string
  hostRole: string
  hostStatus: string
  /** HOST:PORT where its host reaches it; null when the host did not say. */
  address: string | null
  state: string
  /** Requests in flight; null when the host announced only a total for the app. */
  inFlight: number | null
  rttMs: number | null
}

export interface AppView {
  app: string
  /** Allocators whose catalog lists the app (alive or not), by peer ID. */
  runsOn: Array<{ peer: string; status: string }>
  scale: (ScaleRecord & { setAt: string }) | null
  ready: number
  starting: number
  instances: InstanceView[]
}

interface Detail {
  id: string
  address?: string
  state: string
  inFlight: number
}

function instancesOf(m: MemberView, app: string): InstanceView[] {
  const a = m.instances[app]
  if (a === undefined) return []
  const base = {
    peer: m.peer,
    hostRole: m.roles[0] ?? '?',
    hostStatus: m.status,
    rttMs: m.rttMs
  }
  const detail: Detail[] | undefined = a.detail
  if (detail !== undefined)
    return detail.map(d => ({ ...base, id: d.id, address: d.address ?? null, state: d.state, inFlight: d.inFlight }))
  // An announcement without detail: its ready IDs, with the app's total load on the first.
  const ids = a.ids ?? []
  return ids.map(id => ({ ...base, id, address: null, state: 'ready', inFlight: null }))
}

/** Every app any member lists in its catalog, hosts an instance of, or has a scale record for; by name. */
export function appsView(members: MemberView[], scale: Record<string, ScaleRecord>): AppView[] {
  const names = new Set<string>(Object.keys(scale))
  for (const m of members) {
    if (m.status === 'left' || m.status === 'failed') continue
    for (const a of m.catalog) names.add(a)
    for (const a of Object.keys(m.instances)) names.add(a)
  }
  return [...names].sort().map(app => appView(members, scale, app) as AppView)
}

/** One app; undefined when no member knows of it. */
export function appView(members: MemberView[], scale: Record<string, ScaleRecord>, app: string): AppView | undefined {
  const live = members.filter(m => m.status !== 'left' && m.status !== 'failed')
  const runsOn = members
    .filter(m => m.roles.includes('allocator') && m.catalog.includes(app))
    .map(m => ({ peer: m.peer, status: m.status }))
  const instances = live.flatMap(m => instancesOf(m, app))
  const rec = scale[app]
  if (runsOn.length === 0 && instances.length === 0 && rec === undefined) return undefined
  let starting = 0
  for (const m of live) starting += m.instances[app]?.starting ?? 0
  return {
    app,
    runsOn,
    scale: rec === undefined ? null : { ...rec, setAt: new Date(rec.version).toISOString() },
    ready: instances.filter(i => i.state === 'ready').length,
    starting: Math.max(starting, instances.filter(i => i.state === 'starting').length),
    instances
  }
}
