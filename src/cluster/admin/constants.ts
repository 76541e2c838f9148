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
