// Host-side routing alone (src/forward/routing.ts): draining, an app not served here, a
// named instance that is gone, the least loaded ready instance, and the status of each
// refusal from the forwarding protocol's one table.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { router, isRefusal, type InstanceSource } from '../../src/forward/routing.js'
import { FORWARD_STATUS } from '../../src/forward/protocol.js'

interface Inst {
  id: string
  inFlight: number
  port?: number
}

function source(insts: Inst[], opts: { draining?: boolean } = {}): InstanceSource<Inst> {
  return {
    draining: () => opts.draining === true,
    serves: app => app === 'web',
    ready: () => insts,
    target: i =>
      i.port === undefined
        ? undefined
        : { app: 'web', instanceId: i.id, host: '127.0.0.1', port: i.port, protocol: 'http1', begin: () => () => {} }
  }
}

test('the least loaded ready instance, or the one the frame names', () => {
  const route = router(
    source([
      { id: 'a', inFlight: 3, port: 1 },
      { id: 'b', inFlight: 1, port: 2 },
      { id: 'c', inFlight: 2, port: 3 }
    ])
  )
  const least = route({ v: 1, app: 'web' })
  assert.ok(!isRefusal(least) && least.instanceId === 'b')
  const named = route({ v: 1, app: 'web', instance: 'c' })
  assert.ok(!isRefusal(named) && named.instanceId === 'c')
})

test('refusals: draining, unknown app, a named instance that is gone, none with an address', () => {
  const cases: Array<[InstanceSource<Inst>, { v: 1; app: string; instance?: string }, string, RegExp]> = [
    [
      source([{ id: 'a', inFlight: 0, port: 1 }], { draining: true }),
      { v: 1, app: 'web' },
      'DRAINING',
      /shutting down/
    ],
    [source([{ id: 'a', inFlight: 0, port: 1 }]), { v: 1, app: 'other' }, 'UNKNOWN_APP', /other is not hosted here/],
    [
      source([{ id: 'a', inFlight: 0, port: 1 }]),
      { v: 1, app: 'web', instance: 'gone' },
      'NO_INSTANCE',
      /gone of web is not running here/
    ],
    [source([{ id: 'a', inFlight: 0 }]), { v: 1, app: 'web' }, 'NO_INSTANCE', /no ready instance of web/],
    [source([]), { v: 1, app: 'web' }, 'NO_INSTANCE', /no ready instance of web/]
  ]
  for (const [src, frame, code, message] of cases) {
    const r = router(src)(frame)
    assert.ok(isRefusal(r), `${JSON.stringify(frame)} is refused`)
    assert.equal(r.code, code)
    assert.match(r.message, message)
  }
  assert.equal(FORWARD_STATUS.UNKNOWN_APP, 404)
  assert.equal(FORWARD_STATUS.NO_INSTANCE, 503)
  assert.equal(FORWARD_STATUS.DRAINING, 503)
})
