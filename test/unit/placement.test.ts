// Placement alone, with a fake cluster (member rows, RTTs, an allocate function) in place
// of the agent: hard and soft RTT, ejection, saturation → scale out, single-flight cold
// starts, fall-through to the next allocator on a refusal, and the code of every refusal.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Placement, type AppPolicy, type PlacementComponents } from '../../src/proxy/placement.js'
import { Balancer } from '../../src/proxy/balancer.js'
import { PlacementError } from '../../src/proxy/errors.js'
import { AllocationError, type InstanceInfo } from '../../src/allocation/protocol.js'
import type { Member, MemberStatus } from '../../src/cluster/membership/table.js'
import type { Logger } from '../../src/util/log.js'

const quiet: Logger = { error() {}, warn() {}, info() {}, debug() {}, scope: () => quiet, setLevel() {} }
const POLICY: AppPolicy = { softMs: 10, hardMs: 100, targetConcurrency: 5, maxInstances: 4 }
const SELF = 'self-proxy'

interface HostSpec {
  peer: string
  rttMs?: number
  roles?: string[]
  catalog?: string[]
  /** app → instance IDs it announces as ready. */
  ids?: Record<string, string[]>
  inFlight?: number
  slotsFree?: number
  status?: MemberStatus
  /** The announcement's time (epoch ms). */
  ts?: number
}

function member(h: HostSpec): Member {
  const instances: Member['announcement']['instances'] = {}
  for (const [app, ids] of Object.entries(h.ids ?? {}))
    instances[app] = { ready: ids.length, inFlight: h.inFlight ?? 0, ids }
  return {
    announcement: {
      v: 1,
      peer: h.peer,
      roles: h.roles ?? ['allocator'],
      addrs: [],
      version: 'test',
      catalog: h.catalog ?? ['web'],
      instances,
      capacity: { slotsFree: h.slotsFree ?? 4 },
      seq: 1,
      ts: h.ts ?? 0
    },
    status: h.status ?? 'alive',
    statusSince: 0,
    lastHeard: 0,
    confirmations: new Map()
  }
}

interface Fake {
  placement: Placement
  balancer: Balancer
  /** Allocation requests made: "peer app fresh". */
  asked: string[]
  /** RTTs measured on demand. */
  measured: string[]
  hosts: Map<string, HostSpec>
}

/**
 * A fake cluster. `allocate` answers with `answer(peer)`: an instance ID, or an
 * AllocationError to throw; `gate` holds every allocation until it resolves.
 */
function fake(
  hosts: HostSpec[],
  opts: {
    answer?: (peer: string) => string | AllocationError
    gate?: Promise<void>
    policy?: Partial<AppPolicy>
    unmeasured?: Record<string, number>
    /** Coordinate estimates (ms) by peer: with them, only the few nearest by estimate are measured. */
    estimates?: Record<string, number>
    coldStartTimeoutMs?: number
  } = {}
): Fake {
  const table = new Map(hosts.map(h => [h.peer, h]))
  const rtts = new Map(hosts.filter(h => h.rttMs !== undefined).map(h => [h.peer, h.rttMs as number]))
  const asked: string[] = []
  const measured: string[] = []
  const balancer = new Balancer()
  const components: PlacementComponents = {
    self: SELF,
    startedAt: 0,
    members: () => [...table.values()].map(member),
    member: peer => {
      const h = table.get(peer)
      return h === undefined ? undefined : member(h)
    },
    rtt: {
      get: peer => rtts.get(peer),
      measureMany: async peers => {
        for (const p of peers) {
          measured.push(p)
          const ms = opts.unmeasured?.[p]
          if (ms !== undefined) rtts.set(p, ms)
        }
      },
      ...(opts.estimates !== undefined ? { estimate: (peer: string) => opts.estimates?.[peer] } : {})
    },
    allocate: async (peer, app, o): Promise<InstanceInfo> => {
      asked.push(`${peer} ${app} ${String(o.fresh)}`)
      await opts.gate
      const a = opts.answer?.(peer) ?? `i-${peer}`
      if (a instanceof AllocationError) throw a
      return { id: a, app, peer, state: 'ready', started: true, readyMs: 1 }
    },
    balancer,
    log: quiet
  }
  const placement = new Placement(components, {
    policy: () => ({ ...POLICY, ...opts.policy }),
    inLocalCatalog: () => false,
    coldStartTimeoutMs: opts.coldStartTimeoutMs ?? 2000
  })
  return { placement, balancer, asked, measured, hosts: table }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (err instanceof PlacementError) return err.code
    throw err
  }
  throw new Error('placement did not refuse')
}

/** Background allocations run after choose() returns: let them. */
const settle = async (): Promise<void> => {
  await sleep(5)
}

test('an instance within SoftReq is used at once, with no allocation', async () => {
  const f = fake([{ peer: 'near', rttMs: 2, ids: { web: ['a'] } }])
  const c = await f.placement.choose('web')
  assert.equal(c.endpoint.peer, 'near')
  assert.equal(c.endpoint.instance, 'a')
  assert.equal(c.coldMs, 0)
  await settle()
  assert.deepEqual(f.asked, [])
})

test('an instance beyond HardReq is never used: a cold start on the nearest allocator instead', async () => {
  const f = fake([
    { peer: 'far', rttMs: 500, ids: { web: ['a'] } },
    { peer: 'mid', rttMs: 50 },
    { peer: 'near', rttMs: 5 }
  ])
  const c = await f.placement.choose('web')
  assert.equal(c.endpoint.peer, 'near', 'the nearest allocator was asked first and its instance is used')
  assert.equal(c.endpoint.instance, 'i-near')
  assert.deepEqual(f.asked, ['near web false'])
})

test('within HardReq but beyond SoftReq: used at once while a nearer one is allocated in the background', async () => {
  const f = fake([
    { peer: 'mid', rttMs: 50, ids: { web: ['a'] } },
    { peer: 'near', rttMs: 5 },
    { peer: 'farther', rttMs: 60 }
  ])
  const c = await f.placement.choose('web')
  assert.equal(c.endpoint.peer, 'mid', 'the instance within HardReq serves now')
  assert.equal(c.coldMs, 0)
  await settle()
  assert.deepEqual(f.asked, ['near web true'], 'a fresh instance on the allocator within SoftReq, and only there')
  // The new instance is used before any announcement lists it.
  const next = await f.placement.choose('web')
  assert.equal(next.endpoint.peer, 'near')
})

test('unmeasured hosts are measured before the choice, then ranked by RTT', async () => {
  const f = fake(
    [
      { peer: 'x', ids: { web: ['a'] } },
      { peer: 'y', ids: { web: ['b'] } }
    ],
    { unmeasured: { x: 500, y: 3 } }
  )
  const c = await f.placement.choose('web')
  assert.deepEqual(f.measured.sort(), ['x', 'y'])
  assert.equal(c.endpoint.peer, 'y')
})

test('an ejected instance sits out while another is healthy, but beats a cold start when it is the only one', async () => {
  const f = fake([
    { peer: 'h1', rttMs: 1, ids: { web: ['a'] } },
    { peer: 'h2', rttMs: 1, ids: { web: ['b'] } }
  ])
  const bad = f.placement.endpoints('web').find(e => e.peer === 'h1')
  assert.ok(bad !== undefined)
  for (let i = 0; i < 3; i++) {
    f.balancer.start(bad.key)
    f.balancer.finish(bad.key, 0, false)
  }
  assert.ok(f.balancer.ejected(bad.key), 'three failures in a row eject it')
  for (let i = 0; i < 20; i++) assert.equal((await f.placement.choose('web')).endpoint.peer, 'h2')
  f.hosts.delete('h2')
  assert.equal((await f.placement.choose('web')).endpoint.peer, 'h1', 'the only instance, ejected or not')
  await settle()
  assert.deepEqual(f.asked, [], 'no cold start while an ejected instance is there')
})

test('every instance within SoftReq at its target concurrency: one more is allocated (scale out), once at a time', async () => {
  let open!: () => void
  const gate = new Promise<void>(resolve => {
    open = resolve
  })
  const f = fake([{ peer: 'h1', rttMs: 1, ids: { web: ['a'] }, inFlight: 5 }], { gate })
  await f.placement.choose('web')
  await f.placement.choose('web')
  await settle()
  assert.deepEqual(f.asked, ['h1 web true'], 'one fresh allocation, shared by both saturated choices')
  open()
  await settle()
  // Below the target: no scale-out.
  const g = fake([{ peer: 'h1', rttMs: 1, ids: { web: ['a'] }, inFlight: 4 }])
  await g.placement.choose('web')
  await settle()
  assert.deepEqual(g.asked, [])
  // At the app's instance limit: no scale-out either.
  const h = fake([{ peer: 'h1', rttMs: 1, ids: { web: ['a', 'b'] }, inFlight: 10 }], { policy: { maxInstances: 2 } })
  await h.placement.choose('web')
  await settle()
  assert.deepEqual(h.asked, [])
})

test('concurrent cold requests share one allocation (single-flight)', async () => {
  let open!: () => void
  const gate = new Promise<void>(resolve => {
    open = resolve
  })
  const f = fake([{ peer: 'a1', rttMs: 1 }], { gate })
  const waiting = Array.from({ length: 20 }, async () => await f.placement.choose('web'))
  await settle()
  open()
  const choices = await Promise.all(waiting)
  assert.deepEqual(f.asked, ['a1 web false'])
  assert.ok(choices.every(c => c.endpoint.instance === 'i-a1'))
})

test('a refusal falls through to the next allocator, nearest first; all refusing is ALL_REFUSED with every reason', async () => {
  const f = fake(
    [
      { peer: 'near', rttMs: 1 },
      { peer: 'next', rttMs: 2 }
    ],
    {
      answer: peer => (peer === 'near' ? new AllocationError('NO_CAPACITY', 'full') : 'i-next')
    }
  )
  const c = await f.placement.choose('web')
  assert.equal(c.endpoint.peer, 'next')
  assert.deepEqual(f.asked, ['near web false', 'next web false'])

  const g = fake(
    [
      { peer: 'near', rttMs: 1 },
      { peer: 'next', rttMs: 2 }
    ],
    { answer: () => new AllocationError('START_FAILED', 'no image') }
  )
  await assert.rejects(
    g.placement.choose('web'),
    (e: unknown) =>
      e instanceof PlacementError &&
      e.code === 'ALL_REFUSED' &&
      e.status === 503 &&
      /near: START_FAILED/.test(e.message) &&
      /next: START_FAILED/.test(e.message)
  )
})

test('each reason for finding nothing has its own code', async () => {
  assert.equal(await codeOf(fake([{ peer: 'a', rttMs: 1 }]).placement.choose('nosuchapp')), 'UNKNOWN_APP')
  assert.equal(
    await codeOf(fake([{ peer: 'a', rttMs: 1, slotsFree: 0 }]).placement.choose('web')),
    'NO_ALLOCATOR',
    'listed, but no free slot'
  )
  assert.equal(
    await codeOf(fake([{ peer: 'a', rttMs: 1, status: 'failed' }]).placement.choose('web')),
    'UNKNOWN_APP',
    'only a failed member lists it: nobody alive knows it'
  )
  assert.equal(
    await codeOf(fake([{ peer: 'a', rttMs: 1, roles: ['proxy'] }]).placement.choose('web')),
    'NO_ALLOCATOR',
    'a proxy lists it but cannot host it'
  )
  assert.equal(
    await codeOf(fake([{ peer: 'a', rttMs: 900 }]).placement.choose('web')),
    'OUT_OF_REACH',
    'the only allocator is beyond HardReq'
  )
  const never = new Promise<void>(() => {})
  const slow = fake([{ peer: 'a', rttMs: 1 }], { gate: never, coldStartTimeoutMs: 50 })
  const e = await slow.placement.choose('web').catch((err: unknown) => err)
  assert.ok(e instanceof PlacementError && e.code === 'COLD_START_TIMEOUT' && e.status === 504, String(e))
})

test('an announcement newer than an allocation that does not list the instance ends its use', async () => {
  const f = fake([{ peer: 'a1', rttMs: 1 }])
  const c = await f.placement.choose('web')
  assert.equal(c.endpoint.instance, 'i-a1')
  assert.equal(
    f.placement.endpoints('web').length,
    1,
    'the recent allocation is an endpoint before any announcement lists it'
  )
  const h = f.hosts.get('a1')
  assert.ok(h !== undefined)
  h.ts = Date.now() + 1
  assert.equal(f.placement.endpoints('web').length, 0)
})

test('with coordinates, a cold start measures only the 3 nearest allocators by estimate, not all 20', async () => {
  const hosts: HostSpec[] = []
  const estimates: Record<string, number> = {}
  const unmeasured: Record<string, number> = {}
  for (let i = 0; i < 20; i++) {
    hosts.push({ peer: `a${i}` })
    // Estimates rank a7 < a3 < a12 < the rest; the precise measure says a3 is the nearest.
    estimates[`a${i}`] = i === 7 ? 4 : i === 3 ? 5 : i === 12 ? 6 : 50 + i
    unmeasured[`a${i}`] = i === 3 ? 2 : i === 7 ? 9 : i === 12 ? 7 : 60
  }
  const f = fake(hosts, { estimates, unmeasured, policy: { softMs: 100, hardMs: 200 } })
  const c = await f.placement.choose('web')
  assert.deepEqual([...f.measured].sort(), ['a12', 'a3', 'a7'], 'only the three nearest by estimate are probed')
  assert.equal(c.endpoint.peer, 'a3', 'the precise measure decides among them')
  assert.deepEqual(f.asked, ['a3 web false'])
})
