// The local fast path's tuning values, each with why (./protocol.ts says what the fast path is).

/**
 * How often a proxy syncs with each same-host allocator (ms): the longest a new instance goes over libp2p before the
 * fast path takes it, and (twice this) how long a withdrawn instance is held busy for the proxy's ack. Four loopback
 * calls a second cost next to nothing.
 */
export const SYNC_MS = 250

/**
 * A request for an instance the last answer did not list (one just allocated) syncs at once, but at most this often
 * (ms): requests that keep missing (an allocator that does not answer the sync) do not each send one.
 */
export const MISS_SYNC_MS = 50

/**
 * A proxy's idle connection to an allocator's admin API is kept this long (ms): many sync periods, so that the syncs
 * share one connection (the admin API keeps an idle one 5 s) instead of opening one each.
 */
export const ADMIN_KEEPALIVE_MS = 4000

/** One sync must answer within this long (ms): a loopback call of a few hundred bytes takes well under 10. */
export const SYNC_TIMEOUT_MS = 1000

/**
 * A proxy uses an allocator's list for this long after its last answer (ms), then goes over libp2p again: an
 * allocator that stopped answering (killed, frozen) gets no more requests straight to its instances.
 */
export const STALE_MS = 1500

/** How often a proxy reads the runtime directory again for same-host allocators that started or stopped (ms). */
export const RECORDS_MS = 1000

/**
 * An allocator forgets a proxy that has not synced for this long (ms), and what it held on its behalf: a killed proxy
 * sends nothing any more. Many sync periods, so that a busy event loop is no reason to drop a live one.
 */
export const REPORTER_TTL_MS = 5000
