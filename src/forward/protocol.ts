// Wire protocol of forwarding, /physarum/http/1.0.0: a length-prefixed JSON header frame
// {v, app, instance?, proto?} naming the target, then HTTP/1.1 in both directions for as many
// requests as the client sends (keep-alive), so that one stream serves many requests; or,
// when the frame says `proto: "h2"`, HTTP/2 with prior knowledge (RFC 9113 §3.3): one
// session multiplexing every request to the instance, with HTTP/2's own trailers, resets and
// flow control, for h2c and gRPC apps (./h2.ts); or, when it says `proto: "calls"`, the same
// calls in a framing of physarum's own (./frames.ts, ./calls.ts) that crosses no HTTP/2 codec on
// the hop, the host's HELLO frame first. A host that does not know the field speaks HTTP/1.1,
// sees the HTTP/2 preface as a malformed request and closes the stream; one that does not know
// 'calls' refuses the header frame and resets the stream, and the proxy speaks h2 to it.
import { ajv, type FromSchema } from '../util/ajv.js'
import { APP_NAME_PATTERN } from '../config/schema.js'

export const HTTP_PROTOCOL = '/physarum/http/1.0.0'
export const MAX_HEADER_FRAME = 4096

const headerFrameSchema = {
  type: 'object',
  required: ['v', 'app'],
  properties: {
    v: { const: 1 },
    app: { type: 'string', pattern: APP_NAME_PATTERN },
    instance: { type: 'string', minLength: 1, maxLength: 128 },
    /** What the stream carries after the frame: HTTP/1.1 when absent. */
    proto: { enum: ['http1', 'h2', 'calls'] }
  }
} as const

/** Unknown fields are tolerated (a newer proxy may send some) and ignored. */
export type HeaderFrame = FromSchema<typeof headerFrameSchema>

/**
 * A host's answer when it does not pass a request on to an instance. The first four mean
 * the app never saw the request, so the proxy may send it elsewhere whatever its method:
 * those answers carry the code in the ERROR_HEADER too.
 */
export type ForwardErrorCode =
  /** This host does not serve the app. */
  | 'UNKNOWN_APP'
  /** This host has no ready instance of the app (or not the one the frame names). */
  | 'NO_INSTANCE'
  /** This host is shutting down: what is in flight finishes, anything new goes elsewhere. */
  | 'DRAINING'
  /** The instance refused the connection: it is gone, its death not yet noticed. */
  | 'INSTANCE_UNREACHABLE'
  /** The instance failed after the request reached it. */
  | 'UPSTREAM_FAILED'
  /** The request target is not a path. */
  | 'BAD_REQUEST'
  /** A method the hop does not carry (CONNECT). */
  | 'NOT_SUPPORTED'
  /** A bug on the host. */
  | 'INTERNAL'

export const FORWARD_STATUS: Readonly<Record<ForwardErrorCode, number>> = {
  UNKNOWN_APP: 404,
  NO_INSTANCE: 503,
  DRAINING: 503,
  INSTANCE_UNREACHABLE: 503,
  UPSTREAM_FAILED: 502,
  BAD_REQUEST: 400,
  NOT_SUPPORTED: 501,
  INTERNAL: 500
}

/** The response header that marks a host's answer as "the app never saw this request". */
export const ERROR_HEADER = 'x-physarum-error'

/**
 * "peer/app/instance": one instance's key wherever the proxy keeps something per instance
 * (placement's endpoints, the balancer's figures, the forwarding pools), so that the
 * sweep of instances that are gone finds them all.
 */
export function instanceKey(peer: string, app: string, instance = ''): string {
  return `${peer}/${app}/${instance}`
}

const validate = ajv.compile<HeaderFrame>(headerFrameSchema)

/** The frame, or why the bytes are none (the stream is then reset). */
export function decodeHeaderFrame(data: Uint8Array): { frame: HeaderFrame } | { error: string } {
  try {
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
    if (validate(v)) return { frame: v }
    return { error: `invalid header frame: ${ajv.errorsText(validate.errors)}` }
  } catch (err) {
    return { error: `header frame is not UTF-8 JSON: ${(err as Error).message}` }
  }
}
