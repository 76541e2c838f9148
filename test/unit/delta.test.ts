// Unit tests of delta announcements (src/cluster/membership/delta.ts and the table's applyDelta): what a delta
// carries, the load figures' rate limits, version gaps, stale and duplicate deltas, and the wire format's checks.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemberTable } from '../../src/cluster/membership/table.js'
import { DeltaSender, applyDelta, type State } from '../../src/cluster/membership/delta.js'
import {
  decodeDelta,
  encodeDelta,
  MAX_ANNOUNCEMENT_BYTES,
  type Announcement,
  type AppInstances
} from '../../src/cluster/membership/announcement.js'

const PEER = '12D3KooWRULjJGiBa2sLg5s1vebmHTzsREhiY4PDbXyDBe5qGjud'
const limits = { inFlightMs: 1000, cpuLoadMs: 30000, cpuLoadStep: 0.05 }

const state = (over: Partial<State> = {}): State => ({
  roles: ['allocator'],
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  version: '0.1.0',
  catalog: ['hello'],
  instances: {},
  capacity: { slots: 4, slotsFree: 4, cpuLoad: 0.2 },
  ...over
})
const ann = (over: Partial<State> = {}, seq = 100): Announcement => ({ v: 1, peer: PEER, seq, ts: 0, ...state(over) })
const inst = (ready: number, inFlight: number, ids = ['i1']): AppInstances => ({ ready, inFlight, ids })

test('a delta carries only what changed, and applied on the old version gives the new state', () => {
  const s = new DeltaSender(ann(), limits)
  assert.equal(s.next(state(), 1000), undefined, 'nothing changed: no delta')
  const next = state({ instances: { hello: inst(1, 0) }, capacity: { slots: 4, slotsFree: 3, cpuLoad: 0.2 } })
  const d = s.next(next, 1000)
  assert.ok(d !== undefined)
  assert.equal(d.seq, 101)
  assert.deepEqual(d.instances, { hello: inst(1, 0) })
  assert.deepEqual(d.capacity, { slotsFree: 3 })
  assert.equal(d.set, undefined, 'no top-level field changed')
  const applied = applyDelta(ann(), d)
  assert.deepEqual(applied.instances, next.instances)
  assert.deepEqual(applied.capacity, next.capacity)
  assert.equal(applied.seq, 101)
  assert.ok(encodeDelta(d).byteLength < 200, `small: ${encodeDelta(d).byteLength} bytes`)
  // Removals: an app gone is null, a drain ended is unset.
  const s2 = new DeltaSender(ann({ drain: 'draining', instances: { hello: inst(1, 0) } }), limits)
  const d2 = s2.next(state(), 1000)
  assert.deepEqual(d2?.instances, { hello: null })
  assert.deepEqual(d2?.unset, ['drain'])
  const back = applyDelta(ann({ drain: 'draining', instances: { hello: inst(1, 0) } }), d2!)
  assert.equal(back.drain, undefined)
  assert.deepEqual(back.instances, {})
  // A top-level field goes whole.
  const d3 = s2.next(state({ catalog: ['hello', 'echo'] }), 1000)
  assert.deepEqual(d3?.set, { catalog: ['hello', 'echo'] })
})

test('requests in flight are rate-limited per app, a structural change of the app goes at once with them', () => {
  const s = new DeltaSender(ann({ instances: { hello: inst(1, 0), echo: inst(1, 0, ['e1']) } }), limits)
  let t = 0
  const at = (hello: AppInstances, echo = inst(1, 0, ['e1'])): ReturnType<DeltaSender['next']> =>
    s.next(state({ instances: { hello, echo } }), t)
  assert.deepEqual(at(inst(1, 5))?.instances, { hello: inst(1, 5) }, 'first load change goes')
  t = 200
  assert.equal(at(inst(1, 7)), undefined, 'a second within the interval waits')
  t = 400
  assert.deepEqual(at(inst(1, 7), inst(1, 3, ['e1']))?.instances, { echo: inst(1, 3, ['e1']) }, "per app: echo's own")
  t = 600
  // A new ready instance of hello: at once, with its current load.
  assert.deepEqual(at(inst(2, 9, ['i1', 'i2']), inst(1, 3, ['e1']))?.instances, { hello: inst(2, 9, ['i1', 'i2']) })
  t = 900
  assert.equal(at(inst(2, 1, ['i1', 'i2']), inst(1, 3, ['e1'])), undefined, 'load again within the interval')
  t = 1700
  assert.deepEqual(at(inst(2, 1, ['i1', 'i2']), inst(1, 3, ['e1']))?.instances, { hello: inst(2, 1, ['i1', 'i2']) })
  // Interval stretched with the cluster's size: 10× at scale 10.
  t = 2800
  assert.equal(
    s.next(state({ instances: { hello: inst(2, 4, ['i1', 'i2']), echo: inst(1, 3, ['e1']) } }), t, { scale: 10 }),
    undefined
  )
  // force: every change now (a leave).
  assert.ok(
    s.next(state({ instances: { hello: inst(2, 4, ['i1', 'i2']), echo: inst(1, 3, ['e1']) } }), t, { force: true })
  )
  // What a later full announcement sends is exactly the last version.
  assert.deepEqual(s.sent.instances.hello, inst(2, 4, ['i1', 'i2']))
})

test('the CPU load needs a step and an interval; slots and memory go at once', () => {
  const s = new DeltaSender(ann(), limits)
  const cap = (cpuLoad: number, slotsFree = 4): State => state({ capacity: { slots: 4, slotsFree, cpuLoad } })
  assert.equal(s.next(cap(0.22), 0), undefined, 'below the step')
  assert.deepEqual(s.next(cap(0.5), 0)?.capacity, { cpuLoad: 0.5 })
  assert.equal(s.next(cap(0.9), 10000), undefined, 'within the interval')
  assert.deepEqual(s.next(cap(0.9, 3), 10000)?.capacity, { slotsFree: 3 }, 'slots at once, the load still waits')
  assert.deepEqual(s.next(cap(0.9, 3), 30000)?.capacity, { cpuLoad: 0.9 })
})

test('the table applies the next version, drops stale and duplicate deltas, and reports gaps and strangers', () => {
  const t = new MemberTable()
  const d = (seq: number, slotsFree: number): Parameters<MemberTable['applyDelta']>[0] => ({
    v: 1,
    peer: PEER,
    seq,
    ts: seq,
    capacity: { slotsFree }
  })
  assert.equal(t.applyDelta(d(101, 3), 1), 'unknown', 'no announcement of it yet: ask for the full state')
  t.apply(ann(), 0)
  const changes: number[] = []
  t.on('change', m => changes.push(m.announcement.seq))
  assert.equal(t.applyDelta(d(101, 3), 1), 'updated')
  assert.equal(t.get(PEER)?.announcement.capacity.slotsFree, 3)
  assert.equal(t.applyDelta(d(101, 3), 2), 'stale', 'duplicate')
  assert.equal(t.applyDelta(d(100, 9), 2), 'stale', 'older')
  assert.equal(t.applyDelta(d(103, 1), 3), 'gap', 'missed 102')
  assert.equal(t.get(PEER)?.announcement.capacity.slotsFree, 3, 'a delta after a gap is not applied')
  assert.equal(t.get(PEER)?.announcement.seq, 101)
  // The full state (the member's answer) catches up; the next delta applies on it.
  assert.equal(t.apply({ ...ann({ capacity: { slots: 4, slotsFree: 1, cpuLoad: 0.2 } }), seq: 103 }, 4), 'updated')
  assert.equal(t.applyDelta(d(104, 0), 5), 'updated')
  assert.equal(t.get(PEER)?.announcement.capacity.slotsFree, 0)
  assert.deepEqual(changes, [101, 103, 104])
})

test('delta decoding: valid, unknown fields kept, malformed and oversized refused', () => {
  const good = { v: 1, peer: PEER, seq: 5, ts: 1, instances: { hello: inst(1, 2), gone: null }, capacity: { x: null } }
  const ok = decodeDelta(encodeDelta({ ...good, future: 1 } as Parameters<typeof encodeDelta>[0]))
  assert.ok(ok.ok)
  const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))
  for (const [what, bad] of [
    ['not JSON', '{'],
    ['no seq', { ...good, seq: undefined }],
    ['seq 0', { ...good, seq: 0 }],
    ['a bad peer', { ...good, peer: 'x' }],
    ['instances not objects', { ...good, instances: { hello: 3 } }],
    ['capacity not numbers', { ...good, capacity: { slots: 'many' } }],
    ['unset of a required field', { ...good, unset: ['roles'] }],
    ['roles not a list', { ...good, set: { roles: 'allocator' } }]
  ] as Array<[string, unknown]>) {
    const r = decodeDelta(enc(bad))
    assert.equal(!r.ok && r.reason, 'malformed', what)
  }
  const big = decodeDelta(new Uint8Array(MAX_ANNOUNCEMENT_BYTES + 1))
  assert.equal(!big.ok && big.reason, 'oversized')
})
