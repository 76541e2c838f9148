// Delta announcements between real libp2p nodes on 127.0.0.1 in this process: an
// allocator's instance change reaches every member as a delta (no full announcement),
// and a member that missed deltas (unsubscribed from their topic meanwhile) sees the
// version gap at the next one and catches up by asking for the full state.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Agent } from '../../src/cluster/agent.js'
import type { LocalState } from '../../src/cluster/membership/membership.js'
import { DELTA_TOPIC } from '../../src/cluster/membership/announcement.js'
import { addrOf, testConfig, waitFor } from '../helpers/cluster.js'
import { silentLogger } from '../../src/util/log.js'
import { setTimeout as sleep } from 'node:timers/promises'

const PSK = 'd'.repeat(64)
const agents: Agent[] = []

after(async () => {
  await Promise.all(agents.map(async a => await a.stop()))
})

async function start(bootstraps: string[], localState?: () => LocalState): Promise<Agent> {
  const a = await Agent.start({
    role: 'allocator',
    // No periodic full announcement within the test: whatever reaches the others is a delta or an answer to a request.
    config: testConfig({
      Psk: PSK,
      Bootstraps: bootstraps,
      Membership: { ...testConfig().Membership, AnnounceIntervalMs: 600000 }
    }),
    log: silentLogger,
    ephemeral: true,
    admin: false,
    localState
  })
  agents.push(a)
  return a
}

async function count(a: Agent, which: 'deltas' | 'announcements', result: string): Promise<number> {
  const m = await a.metrics[which].get()
  return m.values.find(v => v.labels.result === result)?.value ?? 0
}

test('instance changes reach every member as deltas; a member that missed some catches up by asking', async () => {
  let state: LocalState = { catalog: ['hello'], instances: {}, capacity: { slots: 4, slotsFree: 4 } }
  const source = await start([], () => state)
  const others = await Promise.all([1, 2, 3, 4, 5].map(async () => await start([addrOf(source)])))
  await waitFor(
    'a full view on every node',
    () => [source, ...others].every(n => n.membership.members().filter(m => m.status === 'alive').length === 5),
    30000
  )
  // Past the newcomers' re-announcements (JOIN_ANNOUNCE_MS), so that what follows is deltas alone.
  await sleep(3500)
  await waitFor('every member in the delta topic of the source', () =>
    others.every(o => source.node.services.pubsub.getSubscribers(DELTA_TOPIC).some(p => p.equals(o.node.peerId)))
  )
  const seen = (o: Agent, ready: number): boolean =>
    o.membership.table.get(source.peer)?.announcement.instances.hello?.ready === ready
  const fullsBefore = await Promise.all(others.map(async o => await count(o, 'announcements', 'accepted')))
  const deltasBefore = await Promise.all(others.map(async o => await count(o, 'deltas', 'accepted')))

  state = {
    ...state,
    instances: { hello: { ready: 1, inFlight: 0, ids: ['i1'] } },
    capacity: { slots: 4, slotsFree: 3 }
  }
  source.membership.announceSoon(0)
  await waitFor('the first instance seen by every member', () => others.every(o => seen(o, 1)), 10000)
  for (const [k, o] of others.entries()) {
    assert.equal(await count(o, 'announcements', 'accepted'), fullsBefore[k], `node ${k + 1}: no full announcement`)
    assert.ok((await count(o, 'deltas', 'accepted')) > deltasBefore[k], `node ${k + 1}: by a delta`)
    assert.equal(o.membership.table.get(source.peer)?.announcement.capacity.slotsFree, 3)
  }

  // One member stops listening to deltas and misses two versions.
  const late = others[0]
  late.node.services.pubsub.unsubscribe(DELTA_TOPIC)
  await waitFor(
    'the source to know the late member left the topic',
    () => !source.node.services.pubsub.getSubscribers(DELTA_TOPIC).some(p => p.equals(late.node.peerId))
  )
  const heldSeq = late.membership.table.get(source.peer)?.announcement.seq ?? 0
  for (const ready of [2, 3]) {
    const ids = Array.from({ length: ready }, (_, i) => `i${i + 1}`)
    state = {
      ...state,
      instances: { hello: { ready, inFlight: 0, ids } },
      capacity: { slots: 4, slotsFree: 4 - ready }
    }
    source.membership.announceSoon(0)
    await waitFor(`version with ${ready} instances seen by the others`, () =>
      others.slice(1).every(o => seen(o, ready))
    )
  }
  assert.equal(late.membership.table.get(source.peer)?.announcement.seq, heldSeq, 'the late member missed them')
  late.node.services.pubsub.subscribe(DELTA_TOPIC)
  await waitFor('the late member back in the topic', () =>
    source.node.services.pubsub.getSubscribers(DELTA_TOPIC).some(p => p.equals(late.node.peerId))
  )
  const gapsBefore = await count(late, 'deltas', 'gap')
  // The next delta (a version two ahead of what it holds) is a gap: it asks for the full state, not for the deltas.
  state = { ...state, capacity: { slots: 4, slotsFree: 0 } }
  source.membership.announceSoon(0)
  await waitFor(
    'the late member caught up',
    () =>
      seen(late, 3) &&
      late.membership.table.get(source.peer)?.announcement.capacity.slotsFree === 0 &&
      late.membership.table.get(source.peer)?.announcement.seq === source.membership.selfAnnouncement().seq,
    10000
  )
  assert.ok((await count(late, 'deltas', 'gap')) > gapsBefore, 'through a version gap')
  assert.deepEqual(
    late.membership.table.get(source.peer)?.announcement.instances,
    others[1].membership.table.get(source.peer)?.announcement.instances,
    'the same state as a member that had every delta'
  )
})
