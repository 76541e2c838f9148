// Unit tests of the member table's state machine and of announcement decoding.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemberTable } from '../../src/cluster/membership/table.js'
import {
  decodeAnnouncement,
  encodeAnnouncement,
  MAX_ANNOUNCEMENT_BYTES,
  type Announcement
} from '../../src/cluster/membership/announcement.js'

const PEER = '12D3KooWRULjJGiBa2sLg5s1vebmHTzsREhiY4PDbXyDBe5qGjud'
const ann = (over: Partial<Announcement> = {}): Announcement => ({
  v: 1,
  peer: PEER,
  roles: ['allocator'],
  addrs: [],
  version: '0.1.0',
  catalog: [],
  instances: {},
  capacity: {},
  seq: 10,
  ts: 0,
  ...over
})
const timing = { suspectTimeoutMs: 1500, silenceMs: 1400, forgetAfterMs: 60000 }

test('alive → suspect on silence → failed after the suspect wait → forgotten', () => {
  const t = new MemberTable()
  const changes: string[] = []
  t.on('change', (m, prev) => {
    if (prev !== m.status) changes.push(m.status)
  })
  t.apply(ann(), 0)
  t.tick(1000, timing)
  assert.equal(t.get(PEER)?.status, 'alive')
  t.tick(1401, timing)
  assert.equal(t.get(PEER)?.status, 'suspect')
  // Alone in the table (nobody could confirm), a suspicion needs SuspectTimeoutMs of silence.
  t.tick(1401 + 1499, timing)
  assert.equal(t.get(PEER)?.status, 'suspect')
  t.tick(1401 + 1500, timing)
  assert.equal(t.get(PEER)?.status, 'failed')
  t.tick(1401 + 1500 + 60001, timing)
  assert.equal(t.get(PEER), undefined)
  assert.deepEqual(changes, ['alive', 'suspect', 'failed'])
})

test('a probe answer or a newer announcement brings a suspect back', () => {
  const t = new MemberTable()
  t.apply(ann(), 0)
  t.missed(PEER, 100)
  assert.equal(t.get(PEER)?.status, 'suspect')
  t.heard(PEER, 200)
  assert.equal(t.get(PEER)?.status, 'alive')
  t.unreachable(PEER, 300)
  assert.equal(t.get(PEER)?.status, 'failed')
  assert.equal(t.apply(ann({ seq: 11 }), 400), 'updated')
  assert.equal(t.get(PEER)?.status, 'alive')
})

test('leave, then a restart with a higher seq', () => {
  const t = new MemberTable()
  t.apply(ann(), 0)
  t.apply(ann({ seq: 11, leaving: true }), 10)
  assert.equal(t.get(PEER)?.status, 'left')
  t.heard(PEER, 20)
  assert.equal(t.get(PEER)?.status, 'left', 'a probe does not resurrect a member that left')
  assert.equal(t.apply(ann({ seq: 5 }), 30), 'stale')
  assert.equal(t.apply(ann({ seq: 12 }), 40), 'updated')
  assert.equal(t.get(PEER)?.status, 'alive')
})

test('a stale announcement (seq not above the known one) changes nothing: not the member, not its last sign of life', () => {
  const t = new MemberTable()
  t.apply(ann({ seq: 10 }), 0)
  const changes: string[] = []
  t.on('change', m => {
    changes.push(m.status)
  })
  assert.equal(t.apply(ann({ seq: 9, roles: ['proxy'] }), 10), 'stale')
  assert.equal(t.apply(ann({ seq: 10, roles: ['proxy'] }), 20), 'stale', 'the same seq again is stale too')
  assert.deepEqual(t.get(PEER)?.announcement.roles, ['allocator'])
  assert.equal(t.get(PEER)?.lastHeard, 0, 'a stale announcement is no sign of life')
  assert.deepEqual(changes, [], 'no change event')
})

test('announcement decoding: valid, extra fields kept, malformed and oversized refused', () => {
  const ok = decodeAnnouncement(encodeAnnouncement(ann({ future: true } as Partial<Announcement>)))
  assert.ok(ok.ok)
  assert.equal(ok.ok && ok.announcement.future, true)
  for (const bad of [
    '{',
    '[]',
    '{"v":2}',
    JSON.stringify({ ...ann(), peer: 'x' }),
    JSON.stringify({ ...ann(), seq: -1 })
  ]) {
    const r = decodeAnnouncement(new TextEncoder().encode(bad))
    assert.equal(r.ok, false, bad)
    assert.equal(!r.ok && r.reason, 'malformed')
  }
  const big = decodeAnnouncement(new Uint8Array(MAX_ANNOUNCEMENT_BYTES + 1))
  assert.equal(!big.ok && big.reason, 'oversized')
  const utf = decodeAnnouncement(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]))
  assert.equal(!utf.ok && utf.reason, 'malformed')
  // What the gossip test (test/integration/cluster.test.ts) publishes from a hostile peer, each refused for its own
  // reason here.
  const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))
  const hostile: Array<[string, Uint8Array, 'malformed' | 'oversized']> = [
    ['not JSON', enc('not json'), 'malformed'],
    ['not UTF-8', new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]), 'malformed'],
    ['fields missing', enc({ v: 1 }), 'malformed'],
    ['a seq that is not a number', enc({ ...ann(), seq: 'one' }), 'malformed'],
    ['roles not a list', enc({ ...ann(), roles: 'allocator' }), 'malformed'],
    ['deeply nested', enc('['.repeat(5000) + ']'.repeat(5000)), 'malformed'],
    ['500 addresses', enc({ ...ann(), addrs: Array.from({ length: 500 }, () => '/ip4/127.0.0.1/tcp/1') }), 'malformed'],
    ['100 KB of padding', enc({ ...ann(), pad: 'x'.repeat(100 * 1024) }), 'oversized']
  ]
  for (const [what, data, reason] of hostile) {
    const r = decodeAnnouncement(data)
    assert.equal(!r.ok && r.reason, reason, what)
  }
})

test('confirmations from other members shorten the suspect wait', () => {
  assert.equal(MemberTable.suspectWait(timing, 0), 3000)
  assert.ok(MemberTable.suspectWait(timing, 1) < 3000)
  assert.equal(MemberTable.suspectWait(timing, 3), 500)
  assert.equal(MemberTable.suspectWait(timing, 10), 500)
  const t = new MemberTable()
  t.apply(ann(), 0)
  const other = (p: string): Announcement => ann({ peer: p })
  const members = ['12D3KooWA', '12D3KooWB', '12D3KooWC'].map(p => p.padEnd(52, 'x'))
  for (const p of members) t.apply(other(p), 0)
  t.missed(PEER, 100)
  t.tick(100 + 2999, timing)
  assert.equal(t.get(PEER)?.status, 'suspect', 'unconfirmed in a cluster: twice the timeout')
  // Reporters that are not members, and the suspect itself, do not count.
  for (const r of ['a', 'b', 'c', PEER]) t.confirm(PEER, r, 150)
  assert.equal(t.get(PEER)?.confirmations.size, 0)
  for (const r of members) t.confirm(PEER, r, 150)
  t.tick(100 + 3000, timing)
  assert.equal(t.get(PEER)?.status, 'failed')
})
