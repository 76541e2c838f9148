// The cluster layer's tuning values (RTT probes, failure detection, the libp2p host), each
// with what it controls and why this value, as Serf's coordinate/config.go and memberlist's
// config.go do. The operator's knobs (Membership.ProbeIntervalMs, ProbeTimeoutMs,
// SuspectTimeoutMs, AnnounceIntervalMs, ForgetAfterS) are in the config (../config/defaults.ts).

/** Bytes of one RTT probe: a sequence number and a send time fit; small enough to cost nothing on the wire. */
export const PROBE_BYTES = 16

/**
 * RTT samples kept per peer; a peer's RTT is their median. Nine ride out two outliers on
 * either side (a GC pause, a retransmit), and at one probe per member per period the
 * figure follows a change in the network within a few seconds.
 */
export const RTT_WINDOW = 9

/** Default timeout of one probe (ms) where no config gives one (Membership.ProbeTimeoutMs does for daemons). */
export const PROBE_TIMEOUT_MS = 1000

/** Probes per measure() when the caller does not say: enough for a median on first contact. */
export const MEASURE_SAMPLES = 5

/** A timer this late (ms) means this node's event loop was blocked: such a sample says nothing of the network. */
export const LATE_MS = 50

/** RTT streams per connection and direction: one long-lived stream per peer, a few spare for redials. */
export const RTT_STREAMS = 4

/** libp2p ping streams per connection and direction (its default, 1, serialises concurrent pings from placement). */
export const PING_STREAMS = 32

/**
 * Probes per second a node sends in all, at most, in a large cluster: a member is probed
 * every max(ProbeIntervalMs, members × PROBE_SPACING_MS), so the cost per node is flat in N.
 */
export const PROBE_SPACING_MS = 100

/**
 * A failed member is probed this many times less often than a live one: one that comes back is noticed, a dead one
 * costs little.
 */
export const FAILED_PROBE_FACTOR = 10

/** While this node knows no live member, the bootstraps are dialled again this often (ms). */
export const REJOIN_INTERVAL_MS = 2000

/**
 * A leave announcement is given this long to reach every mesh peer before the streams close (ms): 2–9 ms measured, with
 * margin.
 */
export const LEAVE_FLUSH_MS = 150

/**
 * A bootstrap dial while this node knows no live member gives up after this long (ms); one at a time, retried when it
 * ends. Not shorter: on a loaded host a noise handshake takes seconds, and a dial aborted at 2 s never finished.
 */
export const BOOTSTRAP_DIAL_TIMEOUT_MS = 10000

/** The least time between two refutations of a suspicion of this node (ms); well under a suspect's wait. */
export const REFUTE_MS = 200

/** "This node is slow" is logged at info at most this often (ms), else at debug: a loaded node may flap. */
export const SLOW_LOG_INTERVAL_MS = 60000

/**
 * Local health (Lifeguard): the highest score; Lifeguard's default is 8, so timeouts stretch to at most 9× their base.
 */
export const HEALTH_MAX_SCORE = 8

/** Local health: the remembered event-loop lag halves in this long (ms), so that one bad second counts for a few. */
export const HEALTH_LAG_HALF_LIFE_MS = 2000

/** Local health: one refutation point is forgiven after this long (ms). */
export const HEALTH_REFUTE_DECAY_MS = 2000

/**
 * How often the scale records in members' announcements are merged into this agent's (ms): a new setting is announced
 * at once, so this only bounds how late an allocator acts on it; merging is a few map lookups.
 */
export const SCALE_SYNC_MS = 500

/**
 * The largest yamux message (a data frame with its 12-byte header, and what the patched muxer holds for one
 * event-loop turn before it sends): noise's largest payload (65,535 bytes less its 16-byte tag), so that a full data
 * frame of a large body is one noise encryption and one length prefix. yamux's default of 64 KiB made every full frame
 * two noise messages, the second of 17 bytes.
 */
export const YAMUX_MAX_MESSAGE_BYTES = 65535 - 16

/**
 * A yamux connection pings its peer this often (ms), and once as it opens (yamux's runImmediately). The first ping's
 * RTT is what yamux grows stream windows by, so the pings stay; but one every 30 s (yamux's default) on every
 * connection is ~N/30 ping exchanges per node per second at rest, the only membership cost that grew with the cluster
 * (~130 B per node per s at 20 nodes, ~670 at 100; docs/SCALE.md). Liveness is SWIM's job, not this ping's.
 */
export const YAMUX_KEEPALIVE_INTERVAL_MS = 300_000

/**
 * The receive window a yamux stream grants from its first window update on (bytes; the yamux patch's
 * initialReceiveWindowSize): the peer starts from the spec's 256 KiB and is told of the rest at once. With 256 KiB and
 * a window update once half of it is used, a large body waited on a window update every 128 KiB, and any scheduling
 * delay of either process stalled it; the window grows by itself only when a window's worth arrives within four
 * ping RTTs, which on loopback round to 0 or 1 ms.
 */
export const YAMUX_RECEIVE_WINDOW_BYTES = 1024 * 1024

/**
 * The largest receive window a yamux stream grows to (bytes), and what a stream buffers for a reader that pushes back
 * (libp2p's maxReadBufferLength, which node.ts sets to the same; beyond it libp2p aborts the stream): a paused reader
 * is sent at most its window, so the two must agree. With yamux's default of 16 MiB
 * a window grown while the reader kept up filled a paused reader's buffer past that ("Read buffer length of 4257955
 * exceeded limit of 4194304", yamux.test), and a 100 MB response through the hop was now and then cut short.
 */
export const YAMUX_MAX_STREAM_WINDOW_BYTES = 4 * 1024 * 1024
