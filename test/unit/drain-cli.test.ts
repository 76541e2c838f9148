// The pure parts of `physarum drain`'s client: durations (util/duration) and the report as printed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatReport } from '../../src/cli/drain.js'
import { parseDuration } from '../../src/util/duration.js'

test('parseDuration (seconds): units ms, s, m, h; plain numbers are seconds; anything else is undefined', () => {
  assert.equal(parseDuration('1500ms'), 1.5)
  assert.equal(parseDuration('30s'), 30)
  assert.equal(parseDuration('30'), 30)
  assert.equal(parseDuration('5m'), 300)
  assert.equal(parseDuration('1.5h'), 5400)
  for (const bad of ['', 'soon', '-5s', '5 min', '1e3', 'm']) assert.equal(parseDuration(bad), undefined, bad)
})

test('formatReport: moved, stranded, idle, and the undo', () => {
  const text = formatReport('P', {
    state: 'maintenance',
    moved: [{ app: 'a', to: 'Q', instance: 'i1', stopped: 2, cutOff: 1 }],
    stranded: [{ app: 'b', reason: 'no other allocator lists b within its hard RTT of 200 ms' }],
    idleStopped: 3,
    tookMs: 2345
  })
  assert.equal(
    text,
    [
      'P: drained in 2.3 s, now in maintenance (physarum drain --undo ends it)',
      '  a → Q (instance i1); 2 instance(s) stopped here, 1 request(s) cut off at the deadline',
      '  b: not moved, its instances here keep serving: no other allocator lists b within its hard RTT of 200 ms',
      '  3 idle instance(s) stopped',
      ''
    ].join('\n')
  )
  assert.equal(formatReport('P', { state: 'serving' }), 'P: back in service, taking allocations again\n')
})
