// The proxy's tuning values, each with what it controls and why it has this value. Values
// that an operator sets (timeouts, latency requirements) are in the config instead
// (../config/defaults.ts).

/**
 * Picks per request for refusals and unreachable hosts (each excluded from the next
 * choice), besides the retries an app's policy allows after a failure (Apps.*.Retry).
 * Enough to step past a host that just died and one that drains, few enough that a
 * request for a broken app fails in bounded time.
 */
export const MAX_ATTEMPTS = 4

/** On shutdown, idle connections are closed after this long without a request coming or ending (ms):
 * a keep-alive client sends its next request right after an answer, so this is a few round trips. */
export const QUIET_MS = 200

/**
 * How long the entrypoint waits on shutdown for requests in flight (ms): long enough for
 * any normal request, short enough for a service manager's stop timeout (systemd: 90 s).
 */
export const ENTRYPOINT_DRAIN_MS = 10000

/** How often a drain looks whether requests are still in flight (ms). */
export const DRAIN_POLL_MS = 20

/** How many of the last errors the status page keeps: enough to see a pattern, bounded memory. */
export const RECENT_ERRORS = 20

/**
 * How long an instance this proxy just allocated is used before any announcement lists it
 * (ms): announcements go out at once on a change, so this only covers a lost or late one;
 * an announcement newer than the allocation that does not list it ends it sooner.
 */
export const RECENT_ALLOCATION_MS = 15000

/**
 * A proxy that has just started may not know the cluster yet: for this long after its
 * start (ms), a cold start that finds no allocator waits for the view to fill (bootstrap
 * connect plus the first announcements: 100–300 ms measured on loopback, more on a WAN).
 */
export const JOIN_SETTLE_MS = 3000

/** Poll interval of that wait (ms). */
export const JOIN_SETTLE_POLL_MS = 50

/**
 * Bounds of a placement-time RTT measurement of peers not measured yet (ms): at least 50
 * (a probe round trip on a busy loopback host), at most 2,000 even when HardReq allows
 * more, since a request waits for it.
 */
export const MEASURE_MIN_MS = 50
export const MEASURE_MAX_MS = 2000

/** How often the proxy drops what it keeps of instances that are gone (ms): memory, not correctness. */
export const SWEEP_MS = 60000

/**
 * maxInstances of an app that this proxy's catalog does not list: the allocators enforce
 * their own limits, so the proxy's scale-out check does not bind.
 */
export const UNLISTED_MAX_INSTANCES = 1000

/**
 * The balancer's peak-EWMA time constant (ms): a latency figure decays to the seed (the
 * RTT) over ~10 s without requests, as Linkerd's default, so that an endpoint slow a
 * while ago gets traffic again, while a burst of requests still sees the peak.
 */
export const DECAY_MS = 10000

/** Consecutive failures (5xx, broken connections) after which an endpoint is ejected. */
export const EJECT_AFTER = 3

/** The first ejection lasts this long (ms); each further one in a row doubles it (Envoy's outlier detection). */
export const EJECT_BASE_MS = 5000

/** Longest ejection (ms): an endpoint that recovered is tried again within a minute. */
export const EJECT_MAX_MS = 60000

/**
 * A client must send its request head within this long (ms), as Node's own server default (slowloris); an HTTP/2
 * client its preface.
 */
export const HEADERS_TIMEOUT_MS = 30000

/** A TLS handshake on the entrypoint must end within this long (ms): a client cannot park half-open handshakes. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10000

/**
 * Unmeasured peers measured precisely at placement time when network coordinates give estimates: the three nearest by
 * estimate. Vivaldi ranks well but not exactly (within ~25 % for most pairs): the few nearest are worth a probe;
 * measuring every allocator of a large cluster would cost a round trip per member on the request's path.
 */
export const MEASURE_CANDIDATES = 3

/**
 * Placement takes a peer's RTT as known once this many samples back it (its median), and measures it otherwise: the
 * failure detector's pings feed the same cache, and a single one can carry a busy event loop's delay (tens to hundreds
 * of ms), enough to pass SoftReq and start a needless "nearer" instance. Three probes cost ~1 ms on a LAN, once.
 */
export const PLACEMENT_MIN_SAMPLES = 3
