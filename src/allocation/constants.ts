// The allocation protocol's tuning values, each with what it controls and why this value.
// The wire format's own limit (MAX_ALLOC_MESSAGE) is in ./protocol.ts; the rate limit
// itself (Allocator.RateLimit) is the operator's, in the config.

/** How long a client waits for a ready instance by default (ms): a cold start of a slow image, with margin. */
export const ALLOCATION_TIMEOUT_MS = 30000

/**
 * A request must arrive within this long of the stream opening (ms), or the stream is reset: a peer cannot park
 * streams.
 */
export const REQUEST_READ_TIMEOUT_MS = 10000

/** Writing the answer and closing the stream may take this long (ms); a peer that stops reading is cut off. */
export const ANSWER_TIMEOUT_MS = 5000

/**
 * Allocation streams open at once per connection: concurrent cold starts share one start
 * per app, so this bounds waiting requests, not starts; a flood beyond it is refused by libp2p.
 */
export const MAX_INBOUND_ALLOCATIONS = 256

/**
 * Peers whose token buckets the rate limiter keeps: past this the least recently seen is
 * dropped. Bounded memory under a flood of identities; clearing them all instead would let
 * a peer with many identities reset every other peer's limit.
 */
export const RATE_LIMIT_PEERS = 10000
