// The allocator's capacity decision, pure: may one more instance of an app start here?
// Slots (Allocator.MaxInstances), the app's own MaxInstances, and the memory budget
// (Allocator.MemoryMB against each app's Resources.MemoryMB). Tested alone.

/** What the decision reads of an instance. */
export interface Counted {
  app: string
  state: 'starting' | 'ready' | 'draining' | 'stopping'
  memoryMB: number
  /** Whether the runtime still holds it (a stopping instance holds memory until it is gone). */
  running: boolean
}

export interface Usage {
  /** Instances starting or ready, of any app. */
  slots: number
  /** Instances of the app starting or ready. */
  ofApp: number
  /** Memory of every instance that is not fully gone (MB). */
  memoryMB: number
}

export interface Limits {
  maxInstances: number
  memoryMB: number
}

export function usage(instances: Iterable<Counted>, app?: string): Usage {
  const u = { slots: 0, ofApp: 0, memoryMB: 0 }
  for (const i of instances) {
    const live = i.state !== 'stopping'
    if (live) u.slots++
    if (live && i.app === app) u.ofApp++
    if (live || i.running) u.memoryMB += i.memoryMB
  }
  return u
}

/**
 * Why one more instance of the app (`appMax` instances at most, `appMemoryMB` each) may not start; undefined: it may.
 */
export function refusal(
  u: Usage,
  limits: Limits,
  app: { name: string; maxInstances: number; memoryMB: number }
): string | undefined {
  if (u.slots >= limits.maxInstances) return `all ${limits.maxInstances} instance slots of this allocator are in use`
  if (u.ofApp >= app.maxInstances) return `${app.name} already has its maximum of ${app.maxInstances} instance(s) here`
  if (u.memoryMB + app.memoryMB > limits.memoryMB) {
    return `not enough memory budget left for ${app.name} (${app.memoryMB} MB needed, ${limits.memoryMB - u.memoryMB} MB free)`
  }
  return undefined
}
