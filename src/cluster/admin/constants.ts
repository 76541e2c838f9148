// The admin API's tuning values, each with why.

/**
 * Idle keep-alive connections of the admin API close after this long (ms): its clients are CLIs and scrapers, not hot
 * paths.
 */
export const KEEPALIVE_MS = 5000

/** Random bytes of an admin token: 256 bits, beyond guessing; written as 64 hex digits. */
export const TOKEN_BYTES = 32

/** The token's file name, in KeyFile's directory. */
export const TOKEN_FILE_NAME = 'admin.token'

/**
 * Largest body of a state-changing call (bytes) unless its route says otherwise: a registration or a scale
 * record is well under 1 KB, so 64 KB is generous and a hostile body costs nothing.
 */
export const MAX_BODY_BYTES = 64 * 1024

/** A body must arrive within this long (ms): a client that sends its headers and stalls holds nothing for long. */
export const BODY_TIMEOUT_MS = 5000

/**
 * Largest admin-protocol message (bytes). A request is a few dozen bytes; an answer is a drain report, one line per
 * app of the allocator (at most MaxInstances of them): 256 KB holds thousands, and a hostile length prefix costs no
 * more than that.
 */
export const MAX_ADMIN_MESSAGE = 256 * 1024

/** A request must arrive within this long of the stream opening (ms), or the stream is reset: no parked streams. */
export const ADMIN_REQUEST_READ_TIMEOUT_MS = 10000

/** Writing the answer may take this long (ms); a peer that stops reading is cut off. */
export const ADMIN_ANSWER_TIMEOUT_MS = 5000

/**
 * Admin streams open at once per connection: an operator sends one request at a time, so a handful is plenty; libp2p
 * refuses a flood beyond it.
 */
export const MAX_INBOUND_ADMIN_STREAMS = 4

/** Reaching the peer (a dial, when no connection is open) may take this long (ms) before it counts as unreachable. */
export const ADMIN_DIAL_TIMEOUT_MS = 10000

/**
 * Beyond a drain's deadline, its answer may take this long (ms): the stops after the deadline (each instance's stop
 * has its own bound, a few seconds).
 */
export const ADMIN_ANSWER_SLACK_MS = 60000

/**
 * A remote drain's deadline when the caller names none (s): the allocator's own default (DRAIN_DEADLINE_MS, 5 min),
 * sent explicitly so that the caller knows how long to wait for the answer.
 */
export const REMOTE_DRAIN_DEADLINE_S = 300
