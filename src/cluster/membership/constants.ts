// Tuning of the SWIM failure detector (swim.ts), each value with what it tunes and why
// its default, after SWIM (Das et al., DSN 2002), Lifeguard (Dadgar et al., DSN 2018) and
// memberlist's config.go, which Serf runs on. The operator's knobs stay in the config:
// Membership.ProbeIntervalMs (the protocol period), ProbeTimeoutMs (a direct probe's wait)
// and SuspectTimeoutMs (the base of a suspicion's wait).

/**
 * A probe whose ping (or one of whose ping-reqs) waited for a stream to open, i.e. for a dial and a noise handshake,
 * gets this much longer (ms) before it goes indirect and before it ends, and its round trip is no RTT sample. A
 * newcomer has a connection to hardly anyone, so each of its first probes dials; on a loaded host (50 daemons on 2
 * cores) the handshake alone outlasted the 500 ms probe timeout, the newcomer suspected healthy members and the whole
 * cluster heard it (2026-12-04: ~40 suspicions per join, and the dial-inflated round trips sent the Vivaldi
 * coordinates hundreds of ms off). A member that is really gone is still suspected at once when its redial is refused.
 */
export const DIAL_ALLOWANCE_MS = 2000

/**
 * Members asked to probe a target for us when it missed our direct probe (SWIM's k). memberlist: 3. More catch
 * more lossy paths at the cost of k messages per missed probe, which is rare.
 */
export const INDIRECT_CHECKS = 3

/**
 * A member asked to probe for another (ping-req) answers 'nack' after this share of the probe timeout without an ack
 * (Lifeguard's nack, memberlist's 80 %): the prober's indirect window is one probe timeout too, so a nack sent after a
 * whole one arrived after the prober had given up, and counted as missing — every real failure then raised each
 * prober's local-health score, as if the prober itself were slow, and stretched its next timeouts and suspicions.
 */
export const NACK_FRACTION = 0.5
/**
 * An update is piggybacked this many times × log10(N + 1) before it is dropped (SWIM's λ log N, memberlist's
 * RetransmitMult = 4): with log N rounds of infection every member hears it with high probability.
 */
export const RETRANSMIT_MULT = 4

/** Updates piggybacked on one message at most: a few hundred bytes, like memberlist's UDP-sized packets. */
export const MAX_PIGGYBACK = 8

/**
 * Updates waiting to be sent, at most; the oldest, most sent are dropped first. A member that misses some catches up
 * by push-pull, not by replay.
 */
export const MAX_QUEUED_UPDATES = 1024

/**
 * Broadcasts go out on their own this often (ms), to GOSSIP_NODES random members, besides riding on probes:
 * memberlist's GossipInterval (200 ms on a LAN), halved for a join seen by 100 nodes within a second (log₄ 100 ≈ 3.3
 * rounds).
 */
export const GOSSIP_INTERVAL_MS = 100

/** Members one gossip round goes to (memberlist's GossipNodes: 3). */
export const GOSSIP_NODES = 3

/**
 * The suspicion timeout before confirmations is this many times its least value (Lifeguard's β, memberlist's
 * SuspicionMaxTimeoutMult = 6): a lone suspicion waits long, one that others confirm ripens fast.
 */
export const SUSPICION_MAX_MULT = 6

/**
 * Confirmations from other members that bring a suspicion's wait down to its least value (Lifeguard's K;
 * memberlist's SuspicionMult − 2 = 2). 3: one slow reporter or two cannot fail a member quickly.
 */
export const SUSPICION_CONFIRMATIONS = 3

/**
 * Members that, on hearing of a new suspicion, probe the suspect themselves at once (each hearer with probability
 * SUSPICION_PROBERS / N): its confirmations then arrive within a probe period instead of whenever the round-robin of
 * others reaches it (about two probes a second at any N), and a slow but live member hears of the suspicion directly,
 * on the probe's piggyback, and refutes sooner. A few probes per suspicion, which is rare.
 */
export const SUSPICION_PROBERS = 6
/**
 * The least suspicion wait covers this many gossip rounds of log_{GOSSIP_NODES+1} N each (the suspicion's way to the
 * member and its refutation's way back, with a margin), when that is longer than Membership.SuspectTimeoutMs's share:
 * 1.3 s at 100 members, 2.7 s at 10,000, where memberlist's log10 N scaling of a 1 s base gives 2 s and 4 s.
 */
export const SUSPICION_ROUNDS_MULT = 3
/**
 * Full-state exchange with one random member this often (ms), scaled up past 32 members as memberlist's
 * PushPullInterval (30 s) is, so that its cost stays flat in N. It heals what dissemination missed.
 */
export const PUSH_PULL_INTERVAL_MS = 30000

/**
 * A node that knows no live member sends its join again after this long (ms), doubling up to JOIN_RETRY_MAX_MS. It
 * used to every protocol period: on a loaded host a newcomer's joins piled up while its stream to the seed opened,
 * and the seed answered each with every member and every announcement (100 nodes in one process never converged).
 */
export const JOIN_RETRY_MS = 2000
export const JOIN_RETRY_MAX_MS = 30000
/** A seed answers one newcomer's join at most once per this long (ms); the newcomer's own retries are further apart. */
export const JOIN_ANSWER_MS = 1000
/** A message from a member not known yet triggers a push-pull with it at most this often per member (ms). */
export const UNKNOWN_SYNC_MS = 5000

/** Lifeguard's local health: the highest awareness score (memberlist's AwarenessMaxMultiplier − 1 = 7; ours 8). */
export const AWARENESS_MAX = 8

/** A SWIM frame's largest size (bytes): a push-pull of 10,000 members at ~250 bytes each fits. */
export const MAX_SWIM_FRAME = 4 * 1024 * 1024

/** Members listed in one push-pull at most: more than the 10,000 of docs/SCALE.md's model. */
export const MAX_SYNC_MEMBERS = 20000

/** Outbound SWIM frames queued per peer while its stream opens; more are dropped, as UDP would. */
export const MAX_PENDING_FRAMES = 64

/**
 * Opening a SWIM stream (with its dial) gives up after this long (ms). Frames wait (up to MAX_PENDING_FRAMES) while it
 * opens and the detector's own timers decide about the member meanwhile; a short limit only made a dial on a loaded
 * host (a noise handshake whose every round trip waits for two late event loops) start over, and never finish.
 */
export const SWIM_DIAL_TIMEOUT_MS = 10000

/**
 * Announcements per 'states' frame to a newcomer: at ~1 KB each, a frame stays well under MAX_SWIM_FRAME; a larger
 * cluster's go in several frames.
 */
export const MAX_STATES_PER_FRAME = 500

/**
 * A random failed member is pinged this often (ms), as Serf's reconnect does (every 30 s there): a member that
 * restarted and knows nobody (it was the bootstrap) hears from the cluster and answers with a push-pull. Shorter than
 * Serf's so that a restarted allocator is back in seconds; one ping per interval, and only while some member is failed.
 */
export const RECONNECT_INTERVAL_MS = 5000

/**
 * Least time (ms) between two deltas that carry only an app's requests in flight (delta.ts): a busy allocator's load
 * moves every millisecond, and placement balances on its own counts between two of them. Stretched by N / 10 past 10
 * members (LOAD_MEMBERS_PER_INTERVAL), so that the cluster's load deltas stay flat in N.
 */
export const IN_FLIGHT_DELTA_MS = 1000

/**
 * Least time (ms) between two deltas of the CPU load, stretched likewise: a 1-minute load average moves slowly, only
 * `members` shows it (placement goes by free slots), and every delta is a gossipsub message to every member.
 */
export const CPU_LOAD_DELTA_MS = 60000

/** The least change of the CPU load (per core) worth a delta at all: a quarter of a core. */
export const CPU_LOAD_STEP = 0.25

/** Members per step of the load figures' intervals: the cluster's rate of load deltas stays flat in N. */
export const LOAD_MEMBERS_PER_INTERVAL = 10

/**
 * This node's state is compared with what its peers hold this often (ms), so that load figures that move without an
 * event (requests in flight, CPU load) go out when due; changes with an event (an instance ready) go at once.
 */
export const DELTA_CHECK_MS = 1000

/**
 * A member's full state is asked of it at most this often (ms): a version gap (a missed delta, or a push-pull that
 * names a newer version) costs one request, not one per delta that follows it.
 */
export const STATE_REQUEST_MS = 2000

/**
 * A member this node holds no announcement of yet (its first delta, or a push-pull, came before its full state) is
 * asked for it after a random wait of up to this long (ms), unless a stream to it is open already or its announcement
 * arrived meanwhile (a newcomer publishes its full state several times in its first seconds). Asked at once, every
 * member dialled a newcomer within the same second: in a 50-daemon cluster the newcomer spent its first 6 s at full CPU
 * on ~50 noise handshakes, identify and gossipsub set-ups, answered no probe in time and was suspected, and sometimes
 * failed, by all (2026-12-04).
 */
export const UNKNOWN_STATE_WAIT_MS = 5000

/**
 * Below this many members, a member without an announcement is asked for it at once all the same: a newcomer takes
 * that many handshakes in a burst without trouble, and a small cluster (a few hosts, a test's) learns a new host's
 * apps and instances without the wait.
 */
export const UNKNOWN_STATE_AT_ONCE_MEMBERS = 16

/** Delayed asks (UNKNOWN_STATE_WAIT_MS) pending at once, at most: bounded memory whatever the churn. */
export const MAX_UNKNOWN_ASKS = 4096

/**
 * A probe's round trip is no Vivaldi sample while this node's event loop has lately been late by more than this (ms;
 * health.ts's remembered lag, which decays): such a round trip is mostly the loop's delay. In a 52-node cluster in one
 * process the loop ran hundreds of ms late for a minute after the cluster formed, and the coordinates taken from that
 * minute put nodes 1 ms apart at ~365 ms, and took minutes to come back (2026-12-04).
 */
export const COORDINATE_MAX_LAG_MS = 5
