// The announcement's schema: it lists what placement reads of a member's instances (ready,
// inFlight, ids, starting) with bounded sizes, and leaves fields it does not know alone so
// that peers of two versions can share a cluster during a rolling upgrade.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeAnnouncement,
  encodeAnnouncement,
  type Announcement,
  type AppInstances
} from '../../src/cluster/membership/announcement.js'

const PEER = '12D3KooWRULjJGiBa2sLg5s1vebmHTzsREhiY4PDbXyDBe5qGjud'
const ann = (instances: Record<string, unknown>, over: Record<string, unknown> = {}): Uint8Array =>
  new TextEncoder().encode(
    JSON.stringify({
      v: 1,
      peer: PEER,
      roles: ['allocator'],
      addrs: [],
      version: '0.1.0',
      catalog: ['web'],
      instances,
      capacity: { slots: 16, slotsFree: 14 },
      seq: 1,
      ts: 1,
      ...over
    })
  )

function decoded(data: Uint8Array): Announcement {
  const r = decodeAnnouncement(data)
  assert.ok(r.ok, r.ok ? '' : r.message)
  return r.announcement
}

/** Refused by the schema (not for its size in bytes); the message says where. */
function refused(data: Uint8Array, what: string): string {
  const r = decodeAnnouncement(data)
  assert.equal(r.ok ? 'accepted' : r.reason, 'malformed', what)
  return r.ok ? '' : r.message
}

test("an allocator's instances as its manager sends them: ready, inFlight, ids and starting, typed", () => {
  // InstanceManager.localState(): per app, the ready ones (with their IDs) and those still starting.
  const a = decoded(ann({ web: { ready: 2, inFlight: 3, starting: 1, ids: ['0a1b2c3d4e5f', '6a7b8c9d0e1f'] } }))
  const web: AppInstances = a.instances.web
  const ids: string[] | undefined = web.ids
  const starting: number | undefined = web.starting
  assert.deepEqual(ids, ['0a1b2c3d4e5f', '6a7b8c9d0e1f'])
  assert.equal(starting, 1)
  assert.equal(web.ready, 2)
  assert.equal(web.inFlight, 3)
  // A server-mode proxy announces its user-run instance the same way, without `starting`.
  assert.deepEqual(decoded(ann({ web: { ready: 1, inFlight: 0, ids: ['local-6qGjud-8080'] } })).instances.web.ids, [
    'local-6qGjud-8080'
  ])
})

test('ids and starting are optional, as are catalog, instances and capacity (filled in)', () => {
  assert.deepEqual(decoded(ann({ web: { ready: 0, inFlight: 0 } })).instances.web, { ready: 0, inFlight: 0 })
  const bare = decoded(
    new TextEncoder().encode(
      JSON.stringify({ v: 1, peer: PEER, roles: ['proxy'], addrs: [], version: '0.1.0', seq: 1, ts: 1 })
    )
  )
  assert.deepEqual([bare.catalog, bare.instances, bare.capacity], [[], {}, {}])
})

test("unknown fields, at the top and in an app's entry, are kept and ignored (rolling upgrades)", () => {
  const a = decoded(
    ann(
      { web: { ready: 1, inFlight: 0, ids: ['a'], draining: 1, zones: { eu: 1 } } },
      { region: 'eu-west', weights: [1, 2] }
    )
  )
  assert.equal(a.region, 'eu-west')
  assert.deepEqual(a.instances.web.zones, { eu: 1 })
  assert.deepEqual(a.instances.web.ids, ['a'])
  assert.deepEqual(decoded(encodeAnnouncement(a)), a, 'encode → decode is the identity')
})

test('malformed ids and starting are refused, naming the field', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['ids not a list', { ready: 1, inFlight: 0, ids: 'a' }, /\/instances\/web\/ids/],
    ['an id that is not a string', { ready: 1, inFlight: 0, ids: ['a', 7] }, /\/instances\/web\/ids\/1/],
    ['an empty id', { ready: 1, inFlight: 0, ids: [''] }, /\/instances\/web\/ids\/0/],
    ['starting negative', { ready: 0, inFlight: 0, starting: -1 }, /\/instances\/web\/starting/],
    ['starting not an integer', { ready: 0, inFlight: 0, starting: 0.5 }, /\/instances\/web\/starting/],
    ['ready missing', { inFlight: 0, ids: [] }, /ready/]
  ]
  for (const [what, web, field] of cases) assert.match(refused(ann({ web }), what), field, what)
})

test("sizes are bounded: ids per app, an id's length, app and capacity names", () => {
  const ids = (n: number, len = 12): string[] => Array.from({ length: n }, (_, i) => String(i).padStart(len, '0'))
  // The bounds themselves pass (within the 64 KB of an announcement)...
  assert.equal(decoded(ann({ web: { ready: 1, inFlight: 0, ids: ids(1, 128) } })).instances.web.ids?.[0].length, 128)
  assert.equal(decoded(ann({ web: { ready: 3000, inFlight: 0, ids: ids(3000, 4) } })).instances.web.ids?.length, 3000)
  // ...one past them does not.
  refused(ann({ web: { ready: 1, inFlight: 0, ids: ids(1, 129) } }), 'an id of 129 characters')
  refused(ann({ web: { ready: 1, inFlight: 0, ids: new Array<string>(10001).fill('a') } }), '10001 ids')
  refused(ann({ ['x'.repeat(257)]: { ready: 1, inFlight: 0 } }), 'an app name of 257 characters')
  refused(ann({}, { capacity: { ['x'.repeat(257)]: 1 } }), 'a capacity name of 257 characters')
})

test('instance detail and scale records go through; an announcement too big for its detail goes without it', () => {
  const detail = [{ id: 'i1', address: '127.0.0.1:4000', state: 'ready', inFlight: 2 }]
  const scale = { web: { min: 2, max: 4, version: 5, by: PEER } }
  const a = decoded(ann({ web: { ready: 1, inFlight: 2, ids: ['i1'], detail } }, { scale }))
  assert.deepEqual(a.instances.web.detail, detail)
  assert.deepEqual(a.scale, scale)
  assert.match(refused(ann({}, { scale: { web: { min: -1, version: 1, by: PEER } } }), 'a negative min'), /min/)
  // 300 apps of 64 described instances each: far over 64 KiB with the detail, within it without.
  const many: Record<string, AppInstances> = {}
  for (let i = 0; i < 300; i++) {
    const ids = Array.from({ length: 64 }, (_, j) => `i${j}`)
    many[`app${i}`] = {
      ready: 64,
      inFlight: 0,
      ids: ids.slice(0, 2),
      detail: ids.map(id => ({ id, state: 'ready', inFlight: 0 }))
    }
  }
  const big = decoded(ann({}))
  const bytes = encodeAnnouncement({ ...big, instances: many })
  const back = decoded(bytes)
  assert.equal(back.instances.app7.ready, 64)
  assert.deepEqual(back.instances.app7.ids, ['i0', 'i1'])
  assert.equal(back.instances.app7.detail, undefined)
})
