// The registry's tuning values, each with why. A registration's own check interval and TTL
// are the caller's (physarum register --interval, --ttl); these bound and default them.

/** How often lapsed TTLs are looked for (ms): a TTL is given in seconds, so a quarter second late is nothing. */
export const TTL_SWEEP_MS = 250

/** Shortest check interval a registration may ask for (s): a check is a request to the app; ten a second is plenty. */
export const MIN_INTERVAL_S = 0.1

/** Longest check interval (s): an hour between checks is already no health check. */
export const MAX_INTERVAL_S = 3600

/** Shortest TTL (s): a refresh has to reach the agent in time, over a loaded host's loopback. */
export const MIN_TTL_S = 1

/** Longest TTL (s): a day; anything longer is a registration without a TTL. */
export const MAX_TTL_S = 86400

/** Registrations one agent holds at most: a bound against a runaway script, far above any host's real services. */
export const MAX_REGISTRATIONS = 1000

/** Registered instances per app described one by one in an announcement (for `physarum apps`): the schema's bound. */
export const MAX_DETAIL = 64
