// The process runtime's log relay: an app's output is logged line by line, and an app
// that writes megabytes without a newline is logged in bounded pieces (readline would
// have held it all in the allocator's memory).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { ProcessRuntime } from '../../src/allocator/runtime/process.js'
import { logLines, MAX_LOG_LINE } from '../../src/allocator/runtime/runtime.js'
import { appSpec } from '../../src/catalog/catalog.js'
import { builtinDefaults } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/util/log.js'
import { assertNothingLeft, watchProcesses } from '../helpers/orphans.js'

watchProcesses()

test('app output is relayed by line, and a newline-less flood in pieces of at most MAX_LOG_LINE', async () => {
  const child = spawn(process.execPath, [
    '-e',
    'process.stdout.write("one\\r\\ntwo\\n" + "x".repeat(1 << 20) + "\\nlast")'
  ])
  const lines: string[] = []
  logLines(child.stdout, l => {
    lines.push(l)
  })
  await new Promise(resolve => child.stdout.on('end', resolve))
  assert.deepEqual(lines.slice(0, 2), ['one', 'two'])
  assert.equal(lines.at(-1), 'last')
  const flood = lines.slice(2, -1)
  assert.ok(
    flood.every(l => l.length <= MAX_LOG_LINE && /^x+$/.test(l)),
    'no piece longer than MAX_LOG_LINE'
  )
  assert.equal(flood.join('').length, 1 << 20, 'nothing dropped')
  assert.ok(flood.length >= (1 << 20) / MAX_LOG_LINE)
})

test('a state file that cannot be written does not keep a process from starting or from being stopped', async () => {
  const rt = new ProcessRuntime({ stateFile: '/dev/null/instances.json', log: silentLogger })
  const spec = appSpec(
    'sleeper',
    { Command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'] },
    builtinDefaults().Perf
  )
  const inst = await rt.start(spec, 'state-file-test')
  const pid = Number(inst.handle)
  assert.equal(await rt.isRunning(inst), true)
  // The group exists now, so that the check below can only pass because the stop ended it.
  assert.doesNotThrow(() => process.kill(-pid, 0), `process group ${pid} runs`)
  await rt.stop(inst, { graceMs: 1000 })
  assert.throws(
    () => process.kill(-pid, 0),
    (e: NodeJS.ErrnoException) => e.code === 'ESRCH',
    'the process group is gone'
  )
  await rt.close()
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
