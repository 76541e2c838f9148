// The allocator's side of the local fast path alone (src/fastpath/host.ts): what a proxy reports lands in the
// instances' in-flight counts and last use; a withdrawn instance stays held busy until the proxy has acked an answer
// that no longer lists it; a proxy that stops syncing holds nothing after REPORTER_TTL_MS.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FastPathHost, type HostedInstance } from '../../src/fastpath/host.js'
import type { Report } from '../../src/fastpath/protocol.js'
import { REPORTER_TTL_MS } from '../../src/fastpath/constants.js'

const PROXY = '12D3KooW' + 'A'.repeat(44)
const inst = (id: string): HostedInstance => ({
  id,
  app: 'hello',
  state: 'ready',
  inFlight: 0,
  lastUsed: 0,
  rt: { host: '127.0.0.1', port: 4000 },
  spec: { protocol: 'http1' }
})

function host(instances: HostedInstance[], draining = () => false): FastPathHost {
  return new FastPathHost({
    peer: PROXY.replace('A', 'B'),
    instances: () => instances,
    get: id => instances.find(i => i.id === id),
    draining
  })
}

const report = (ack: number, instances: Report['instances'] = {}): Report => ({ v: 1, proxy: PROXY, ack, instances })

test('reports become in-flight counts and last use; the answer lists the ready instances', () => {
  const a = inst('a')
  const b = inst('b')
  b.state = 'starting'
  const h = host([a, b])
  const first = h.report(report(0))
  assert.deepEqual(
    first.instances.map(i => i.id),
    ['a']
  )
  assert.equal(first.draining, false)
  const before = Date.now()
  h.report(report(first.seq, { a: { inFlight: 3, begun: 5 } }))
  assert.equal(a.inFlight, 3)
  assert.ok(a.lastUsed >= before)
  // The next report replaces the last one, it does not add to it.
  a.lastUsed = 0
  h.report(report(first.seq + 1, { a: { inFlight: 0, begun: 0 } }))
  assert.equal(a.inFlight, 0)
  assert.equal(a.lastUsed, 0, 'no use reported: the last use stays')
})

test('a withdrawn instance is held busy until the proxy acked an answer without it', () => {
  const a = inst('a')
  const h = host([a])
  const s1 = h.report(report(0)).seq
  const s2 = h.report(report(s1)).seq
  assert.equal(a.inFlight, 0)
  assert.ok(h.mayBeUsed('a'))
  // Withdrawn (a drain's hand-over): the proxy still uses the list of s2.
  a.state = 'draining'
  h.refresh()
  assert.equal(a.inFlight, 1, 'held while the proxy may still send to it')
  // The proxy syncs (ack s2), gets s3 without it: it may have begun requests on the way, until it acks s3.
  const s3 = h.report(report(s2))
  assert.deepEqual(s3.instances, [])
  assert.equal(a.inFlight, 1)
  h.report(report(s3.seq, { a: { inFlight: 2, begun: 0 } }))
  assert.equal(a.inFlight, 2, 'acked: only what it reports')
  assert.ok(!h.mayBeUsed('a'))
  h.report(report(s3.seq + 1))
  assert.equal(a.inFlight, 0)
})

test('a lost answer (an old ack) keeps every instance it may have listed held', () => {
  const a = inst('a')
  const h = host([a])
  const s1 = h.report(report(0)).seq
  h.report(report(s1)) // its answer is lost: the proxy acks s1 again
  a.state = 'draining'
  const s3 = h.report(report(s1)).seq
  assert.equal(a.inFlight, 1)
  h.report(report(s3))
  assert.equal(a.inFlight, 0)
})

test('shutting down: nothing listed, and every listed instance held until acked', () => {
  const a = inst('a')
  let draining = false
  const h = host([a], () => draining)
  const s1 = h.report(report(0)).seq
  draining = true
  h.refresh()
  assert.equal(a.inFlight, 1)
  const ans = h.report(report(s1))
  assert.equal(ans.draining, true)
  assert.deepEqual(ans.instances, [])
  h.report(report(ans.seq))
  assert.equal(a.inFlight, 0)
})

test('a proxy that stops syncing holds nothing after REPORTER_TTL_MS', t => {
  t.mock.timers.enable({ apis: ['Date'] })
  const a = inst('a')
  const h = host([a])
  const s1 = h.report(report(0)).seq
  h.report(report(s1, { a: { inFlight: 4, begun: 4 } }))
  assert.equal(a.inFlight, 4)
  t.mock.timers.tick(REPORTER_TTL_MS + 1)
  h.refresh()
  assert.equal(a.inFlight, 0)
  assert.ok(!h.mayBeUsed('a'))
})

test('reported instances the allocator does not have are ignored', () => {
  const a = inst('a')
  const h = host([a])
  h.report(report(0, { nope: { inFlight: 9, begun: 9 } }))
  assert.equal(a.inFlight, 0)
})
