// A daemon's start-up without two of V8's throughput features, which come back once the
// daemon is up: growing the young generation, and optimizing with TurboFan; and one V8
// setting for the process's whole life, no allocation-site pretenuring.
//
// Why (measured on dist/physarum, docs/BENCHMARKS.md): start-up allocates mostly
// long-lived state (module code, libp2p's components), which a young generation only
// copies before promoting it, yet its survival rate makes V8 grow the young generation
// from 1 to 16 MB; only a GC in a quiet moment gives that back, so an idle daemon
// measured ~15 MB more at 20 s in about 2 runs of 5, and peaked 12 MB higher. TurboFan
// optimizes functions that are hot only during start-up, and its compile zones stay in
// malloc's per-thread arenas: without it until the daemon is up, an idle allocator or
// proxy holds ~2.5 MB less private memory and ~1 MB less of the executable's code
// pages. Under load both features are back: the young generation grows (fewer
// scavenges, see the forwarding benchmark) and hot request paths are optimized.
//
// One setting stays for the process's whole life: no allocation-site pretenuring. V8
// learned at start-up that the objects of some allocation sites live long (module and
// component state) and then allocated the same sites' per-request objects (headers,
// stream and request state) straight in the old generation: under 1,000 req/s a daemon's
// heap grew ~2 MB per scavenge, each scavenge took longer (the old-to-young pointers of
// those objects to visit) and a mark-compact ran every few seconds. Without it the heap
// after a scavenge stays flat; measured A/B in docs/BENCHMARKS.md.
import { setFlagsFromString } from 'node:v8'

// V8's own defaults (Node 20, V8 11.3), restored by leanStartEnd.
const DURING = ['--semi-space-growth-factor=1', '--no-turbofan']
const AFTER = ['--semi-space-growth-factor=2', '--turbofan']
const ALWAYS = ['--no-allocation-site-pretenuring']

let active = false

/** Whether the user set V8 flags matching `concern` (NODE_OPTIONS, node flags): then those are left alone. */
function userTuned(concern: RegExp): boolean {
  return concern.test([...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '))
}

// Each setting steps back only for flags of its own concern: a user's young-generation size
// says nothing about pretenuring, and the other way round.
const YOUNG_GENERATION_OR_TIERS = /semi-space|turbofan|(^|\s)--(no-)?opt\b|jitless|max-opt/
const PRETENURING = /pretenuring/

/** Before anything else runs: V8 takes its pretenuring decisions from the first scavenges on. */
export function lifelongV8Settings(): void {
  if (userTuned(PRETENURING)) return
  for (const f of ALWAYS) setFlagsFromString(f)
}

export function leanStartBegin(): void {
  if (active || userTuned(YOUNG_GENERATION_OR_TIERS)) return
  for (const f of DURING) setFlagsFromString(f)
  active = true
}

export function leanStartEnd(): void {
  if (!active) return
  for (const f of AFTER) setFlagsFromString(f)
  active = false
}
