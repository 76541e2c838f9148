// The allocator's tuning values, each with what it controls and why this value. What an
// operator sets (MaxInstances, MemoryMB, DrainTimeoutS, an app's IdleTimeoutS and Health)
// is in the config instead (../config/defaults.ts).

/** How often idle instances are looked for (ms): IdleTimeoutS is in seconds, so a second's slack is nothing. */
export const CULL_INTERVAL_MS = 1000

/**
 * How often the liveness checks are scheduled (ms). Each instance is checked on its own
 * Health.IntervalMs; this tick only bounds how late a check may run.
 */
export const HEALTH_TICK_MS = 250

/**
 * How often a starting instance's readiness check is repeated (ms): the cold start waits on
 * it, and a check against loopback costs well under a millisecond, so polling fast is cheap
 * (an app is ready 100–300 ms after its start here).
 */
export const READY_POLL_MS = 30

/**
 * Between SIGTERM and kill when an instance is stopped (ms): an app that drains on SIGTERM
 * has time to, while one that ignores it (busybox as PID 1) costs 2 s, not Docker's 10.
 */
export const STOP_GRACE_MS = 2000

/** How often a drain looks whether requests are still in flight (ms). */
export const DRAIN_POLL_MS = 50

/** Health check of a leftover instance at restart, before it is adopted (ms). */
export const ADOPT_CHECK_TIMEOUT_MS = 2000

/** A missing image is pulled for at most this long (ms): without a registry, a fast, clear START_FAILED. */
export const PULL_TIMEOUT_MS = 20000

/**
 * How often the watchdog looks whether its allocator still runs, and whether a successor with the same identity
 * started (ms). The closed pipe tells the death at once; this poll is the fallback, and a successor is seen this fast.
 */
export const WATCHDOG_POLL_MS = 250

/**
 * After a first sweep, the reaper sweeps once more this much later (ms): a container whose create call was on its way
 * when the allocator died appears only after the first listing.
 */
export const REAP_SWEEP_AGAIN_MS = 1000

/** SIGTERM-to-kill grace of a reaped instance (ms): nobody waits for its requests any more. */
export const REAP_STOP_GRACE_MS = 1000

/** Bounds the whole reap (ms): an engine that hangs must not keep the watchdog forever. */
export const REAP_TIMEOUT_MS = 30000

/**
 * A drain waits this long between a replacement being ready elsewhere and the local instances taking no new request
 * (ms): the replacement's announcement reaches every proxy in 2–9 ms on a LAN (../../shared figures), so a second is
 * ample; a proxy that has not heard yet is refused with NO_INSTANCE and picks again, so nothing fails either way.
 */
export const DRAIN_HANDOVER_MS = 1000

/** `physarum drain` without --deadline: long requests and downloads get this long to finish (ms). */
export const DRAIN_DEADLINE_MS = 5 * 60 * 1000
/** Instances per app described one by one in an announcement (for `physarum apps`): the schema's bound. */
export const MAX_DETAIL = 64

/**
 * A warm instance that cannot start (no capacity, a broken app) is retried every cull tick, but said at most this
 * often per app (ms): a minute of one line instead of sixty.
 */
export const WARM_WARN_INTERVAL_MS = 60000

/** After a warm instance failed to start, the next try waits this long (ms): a broken app is not spawned every tick. */
export const WARM_RETRY_MS = 5000
