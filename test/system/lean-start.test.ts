// The lean start-up (src/cli/lean-start.ts) turns TurboFan off while a daemon starts and
// must turn it back on: without it the forwarding hop serves a third of its requests.
// V8's own view of a hot function, through --allow-natives-syntax in a child process.
// And the lifelong setting: no allocation-site pretenuring, seen in the old space's size.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { assertNothingLeft } from '../helpers/orphans.js'

/** V8 11's OptimizationStatus bit for code optimized by TurboFan. */
const TURBOFANNED = 1 << 6

const LEAN_START = JSON.stringify(pathToFileURL(resolve('build/src/cli/lean-start.js')).href)

/** Runs `source` (an ES module that may import LEAN_START) in a child node with `flags`; its stdout. */
function probe(source: string, flags: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-lean-'))
  try {
    const script = join(dir, 'probe.mjs')
    writeFileSync(script, source)
    const r = spawnSync(process.execPath, [...flags, script], { encoding: 'utf8', timeout: 30000 })
    assert.equal(r.status, 0, r.stderr)
    return r.stdout
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A child process whose allocation site first makes objects that live long, then many that
 * die at once; how much the old space grew during the second part (bytes).
 */
function pretenuredBytes(settings: boolean, flags: string[] = []): number {
  return Number(
    probe(
      `import { lifelongV8Settings } from ${LEAN_START}
import { getHeapSpaceStatistics } from 'node:v8'
if (${String(settings)}) lifelongV8Settings()
const old = () => getHeapSpaceStatistics().find(s => s.space_name === 'old_space').space_used_size
const make = (i) => ({ i, a: [i, i + 1], s: 'x' + i })
const kept = []
for (let i = 0; i < 300000; i++) kept.push(make(i))
gc(); gc()
const before = old()
let n = 0
for (let i = 0; i < 2000000; i++) n += make(i).a.length
console.log(old() - before, kept.length + n > 0)
`,
      ['--expose-gc', ...flags]
    ).split(' ')[0]
  )
}

test('short-lived objects stay young after their allocation site made long-lived ones (no pretenuring)', () => {
  const MB = 1048576
  // The control shows the scenario works: V8's default moves the short-lived objects to the old space.
  const withDefault = pretenuredBytes(false)
  assert.ok(withDefault > MB, `V8's default pretenures them (old space grew ${withDefault} bytes)`)
  const withSettings = pretenuredBytes(true)
  assert.ok(withSettings < MB / 4, `with physarum's settings the old space does not grow (grew ${withSettings} bytes)`)
  // A flag of another concern (here the young generation's growth, at V8's own value) leaves the setting on.
  const withOtherFlag = pretenuredBytes(true, ['--semi-space-growth-factor=2'])
  assert.ok(
    withOtherFlag < MB / 4,
    `with a young-generation flag given, still no pretenuring (grew ${withOtherFlag} bytes)`
  )
})

test('TurboFan is off during the lean start-up and optimizes hot code again after it', () => {
  const out = probe(
    `import { leanStartBegin, leanStartEnd } from ${LEAN_START}
const status = (f) => %GetOptimizationStatus(f)
const hot = (n) => { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s }
const warm = (f) => { for (let i = 0; i < 50000; i++) f(100) }
leanStartBegin()
const early = (n) => { let s = 0; for (let i = 0; i < n; i++) s += i % 5; return s }
warm(early)
const during = status(early)
leanStartEnd()
warm(hot)
warm(early)
console.log(JSON.stringify({ during, after: status(hot), earlyAfter: status(early) }))
`,
    ['--allow-natives-syntax']
  )
  const s = JSON.parse(out) as { during: number; after: number; earlyAfter: number }
  assert.equal(
    s.during & TURBOFANNED,
    0,
    `a hot function during start-up is not optimized (status ${s.during.toString(2)})`
  )
  assert.notEqual(
    s.after & TURBOFANNED,
    0,
    `a hot function after start-up is optimized (status ${s.after.toString(2)})`
  )
  assert.notEqual(
    s.earlyAfter & TURBOFANNED,
    0,
    `a function first run during start-up is optimized once it is hot after it (status ${s.earlyAfter.toString(2)})`
  )
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
