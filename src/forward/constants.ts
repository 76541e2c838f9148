// The forwarding hop's tuning values, each with what it controls and why this value. The
// wire format's own limits (MAX_HEADER_FRAME) are in ./protocol.ts.

/**
 * Forwarding streams per connection and direction (one per request in flight). Both sides
 * need it: the handler's limits also bind the dialer when it serves the protocol itself (a
 * proxy in server mode), and libp2p's own default of 64 would cap a proxy at 64 concurrent
 * requests per host.
 */
export const MAX_STREAMS = 4096

/**
 * Streams a proxy keeps per instance (undici pool connections): each carries one request at
 * a time, so this is the concurrency per instance before requests queue in the proxy.
 */
export const STREAMS_PER_INSTANCE = 128

/**
 * An idle stream is closed after this long (ms): a warm request pays no stream open (~1.3 ms), an idle proxy holds
 * nothing for long.
 */
export const STREAM_KEEPALIVE_MS = 60000

/**
 * A stream open (dial + protocol select + header frame) that takes longer than this fails (ms); a frozen host is cut
 * sooner by abortOpens.
 */
export const CONNECT_TIMEOUT_MS = 10000

/**
 * What a forwarding stream's Node.js side (./duplex.ts) buffers each way before it pushes back (bytes): a whole
 * initial yamux window (256 KiB). With Node's default of 16 KiB every 64 KiB chunk of a large body paused and resumed
 * the stream or the socket feeding it: the allocator's reads from the app took 30 % more system calls per 100 MB
 * (epoll_ctl 364 against 113, read 2,300 against 1,736, strace -c).
 */
export const STREAM_HIGH_WATER_MARK = 256 * 1024

/** Connections from a host to one local instance (undici pool): above any app's TargetConcurrency. */
export const INSTANCE_CONNECTIONS = 256

/**
 * An idle connection to a local instance is closed after this long (ms); shorter than the
 * idle timeouts of common app servers (Node's 5 s is the exception, handled by a retry on a
 * fresh connection), and under the stream keep-alive so the host lets go first.
 */
export const INSTANCE_KEEPALIVE_MS = 30000

/** A stream must send its header frame within this long of opening (ms), or it is reset: a peer cannot park streams. */
export const HEADER_FRAME_TIMEOUT_MS = 10000

/**
 * The HTTP head of a request on a stream must arrive within this long (ms), as Node's own server default (slowloris).
 */
export const SERVE_HEADERS_TIMEOUT_MS = 30000

/**
 * An idle stream on the serving side is closed after this long (ms): longer than the client's keep-alive, so the client
 * closes first.
 */
export const SERVE_KEEPALIVE_MS = 120000

/**
 * The largest request head the serving side reads (bytes): twice the entrypoint's, so what the entrypoint accepts
 * passes.
 */
export const SERVE_MAX_HEADER_BYTES = 64 * 1024

/** How often a stop looks whether the streams have closed (ms). */
export const CLOSE_POLL_MS = 20

/** On shutdown, open streams get this long to finish their last response before they are destroyed (ms). */
export const CLOSE_GRACE_MS = 2000

/** After one side of an upgraded connection closed, the other gets this long to close too, then is destroyed (ms). */
export const SPLICE_LINGER_MS = 5000

/**
 * HTTP/2 sessions physarum opens or accepts (the entrypoint, both ends of the hop, towards an app). A stream window of
 * 1 MiB (HTTP/2's default of 64 KiB stalls a stream after 64 KiB per round trip); header lists up to 64 KiB, as the
 * HTTP/1.1 side (a header-block bomb is refused, not buffered); 1,000 streams at once per session; what one session may
 * hold in nghttp2 is capped at 32 MB (maxSessionMemory, room for 32 full stream windows), beyond which it is refused.
 */
export const H2_SESSION_OPTIONS = {
  settings: { initialWindowSize: 1 << 20, maxHeaderListSize: 64 * 1024, maxConcurrentStreams: 1000 },
  maxHeaderListPairs: 256,
  maxSessionMemory: 32,
  maxOutstandingPings: 10
} as const

/**
 * A client HTTP/2 session with streams open is pinged this often (ms): well under the 120 s after which a quiet libp2p
 * stream (and the session on it) is closed, so that a gRPC call silent for minutes survives.
 */
export const H2_PING_MS = 30000

/**
 * The most of an HTTP/2 request's body (bytes) a proxy keeps until an instance took the request, so that a host's
 * refusal (the app never saw it: NO_INSTANCE, DRAINING, …) can be retried on the next instance: a unary gRPC call is
 * far smaller; a larger (streaming) body is relayed all the same, only no longer retried.
 */
export const H2_REPLAY_MAX_BYTES = 64 * 1024

/**
 * Whether the serving side carries HTTP/1.1 to an instance as a byte pipe (./pipe.ts: heads parsed, bodies passed as
 * bytes on a pooled TCP connection) rather than through Node's HTTP server and an undici pool. On unless the
 * environment says PHYSARUM_FORWARD_PIPE=0: the other path stays for A/B measurements (bench/forwarding.ts).
 */
export const SERVE_PIPE = process.env.PHYSARUM_FORWARD_PIPE !== '0'
