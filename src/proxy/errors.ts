// What the proxy tells a client when it cannot serve a request: one code per reason, and
// one table from code to HTTP status, so that a status never drifts from its code.
// Errors of the forwarding hop itself (a host's refusal) are in ../forward/protocol.ts.

/** Why placement found no instance to use. */
export type PlacementCode =
  /** No member announces an instance of the app and no allocator's catalog lists it. */
  | 'UNKNOWN_APP'
  /** Allocators list the app, but none of them is alive with a free slot. */
  | 'NO_ALLOCATOR'
  /** Allocators that could host the app exist, but none within the app's HardReq. */
  | 'OUT_OF_REACH'
  /** Every allocator within reach was asked and refused (their reasons in the message). */
  | 'ALL_REFUSED'
  /** An allocation was under way, but no instance became ready within Proxy.ColdStartTimeoutS. */
  | 'COLD_START_TIMEOUT'
  /** The client went away while it waited. */
  | 'CLIENT_GONE'

/** Every code the proxy's entrypoint answers with, in `{"error": {"code", "message"}}`. */
export type ProxyErrorCode =
  | PlacementCode
  /** The request target is not a path. */
  | 'BAD_REQUEST'
  /** The first path segment is not an app name. */
  | 'BAD_APP_NAME'
  /** Instances were chosen, but none could be reached (each refused or its host was gone). */
  | 'NO_REACHABLE_INSTANCE'
  /** The instance (or the hop to it) failed before its answer began. */
  | 'UPSTREAM_FAILED'
  /** The instance did not begin its answer within the request timeout. */
  | 'UPSTREAM_TIMEOUT'
  /** A method the proxy does not forward (CONNECT: it is no tunnel). */
  | 'NOT_SUPPORTED'
  /** A bug in the proxy: the log has the details. */
  | 'INTERNAL'

export const HTTP_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  UNKNOWN_APP: 404,
  NO_ALLOCATOR: 503,
  OUT_OF_REACH: 503,
  ALL_REFUSED: 503,
  COLD_START_TIMEOUT: 504,
  // Nobody reads it (the client is gone), but the access log and metrics do: nginx's 499.
  CLIENT_GONE: 499,
  BAD_REQUEST: 400,
  BAD_APP_NAME: 400,
  NO_REACHABLE_INSTANCE: 502,
  UPSTREAM_FAILED: 502,
  UPSTREAM_TIMEOUT: 504,
  NOT_SUPPORTED: 501,
  INTERNAL: 500
}

/** Placement found no instance: its code says why, its message the details. */
export class PlacementError extends Error {
  override name = 'PlacementError'
  constructor(
    readonly code: PlacementCode,
    message: string
  ) {
    super(message)
  }
  get status(): number {
    return HTTP_STATUS[this.code]
  }
}
