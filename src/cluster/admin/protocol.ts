// Wire protocol of remote administration, /physarum/admin/1.0.0: one length-prefixed JSON request
// {v, id, op: "drain" | "undo", deadlineS?} answered by {ok: true, result} or {ok: false, error: {code, message}}.
// It carries `physarum drain PEER` to an allocator on another host, whose admin API is loopback only. Both directions
// are validated with ajv; this module holds the schemas, the codes and the client (the server is ./peer-server.ts).
//
// Authorization: the target takes a request only from a peer ID listed in its own Admin.Operators (none by default:
// no remote administration at all). libp2p's noise handshake already proves the remote peer's ID with its key, so an
// allowlist of peer IDs needs no second signature scheme, no key distribution beyond the IDs that `members` shows, and
// it is revoked by removing the ID (SIGHUP). The PSK alone admits any member, a proxy included: not enough to stop a
// host's instances. The caller is an agent (allocator or proxy) on the operator's host, reached over its loopback API
// with that host's admin token: who may read the token there may act with that agent's identity.
import { lpStream, InvalidDataLengthLengthError } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import type { PeerId } from '@libp2p/interface'
import type { PhysarumNode } from '../node.js'
import { ajv, type FromSchema } from '../../util/ajv.js'
import { ADMIN_DIAL_TIMEOUT_MS, MAX_ADMIN_MESSAGE } from './constants.js'

export const ADMIN_PROTOCOL = '/physarum/admin/1.0.0'

/** Why the target refused, as it says on the wire. */
export type AdminWireCode = 'BAD_REQUEST' | 'NOT_AUTHORIZED' | 'CONFLICT' | 'UNSUPPORTED' | 'INTERNAL'
/** Why the caller got no result: the target's refusal, or the exchange itself failed. */
export type AdminCallCode = AdminWireCode | 'UNREACHABLE' | 'TIMEOUT' | 'BAD_RESPONSE'

export const adminRequestSchema = {
  type: 'object',
  required: ['v', 'id', 'op'],
  additionalProperties: false,
  properties: {
    v: { const: 1 },
    /** Chosen by the caller, echoed back. */
    id: { type: 'string', minLength: 1, maxLength: 128 },
    op: { enum: ['drain', 'undo'] },
    /** drain: how long in-flight requests may take to finish (s). */
    deadlineS: { type: 'number', minimum: 0, maximum: 86400 }
  }
} as const

export type AdminRequest = FromSchema<typeof adminRequestSchema>
export type AdminOp = AdminRequest['op']

export type AdminResponse =
  | { v: 1; id: string; ok: true; result: Record<string, unknown> }
  | { v: 1; id: string; ok: false; error: { code: AdminWireCode; message: string } }

export const validateAdminRequest = ajv.compile<AdminRequest>(adminRequestSchema)

export const validateAdminResponse = ajv.compile<AdminResponse>({
  type: 'object',
  required: ['v', 'id', 'ok'],
  properties: {
    v: { const: 1 },
    id: { type: 'string', maxLength: 128 },
    ok: { type: 'boolean' },
    result: { type: 'object' },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', maxLength: 64 }, message: { type: 'string', maxLength: 4096 } }
    }
  },
  if: { properties: { ok: { const: true } } },
  then: { required: ['result'] },
  else: { required: ['error'] }
})

/** Bytes of a length prefix for MAX_ADMIN_MESSAGE (an unsigned varint: 7 bits a byte). */
const MAX_LENGTH_BYTES = Math.ceil(Math.log2(MAX_ADMIN_MESSAGE + 1) / 7)

/**
 * The unsigned-varint length prefix, refused once it is longer than MAX_LENGTH_BYTES and still unfinished.
 * @libp2p/utils' lpStream checks maxLengthLength only after a varint is complete, so a peer that sends bytes with the
 * continuation bit set forever is read (one byte at a time, into a growing buffer) until the read timeout; an
 * incomplete prefix here throws RangeError, which lpStream takes as "read one more byte".
 */
export function boundedLengthDecoder(data: Uint8ArrayList): number {
  let value = 0
  for (let i = 0; i < data.byteLength; i++) {
    if (i >= MAX_LENGTH_BYTES) throw new InvalidDataLengthLengthError(`length prefix over ${MAX_LENGTH_BYTES} bytes`)
    const b = data.get(i)
    value += (b & 0x7f) * 2 ** (7 * i)
    if ((b & 0x80) === 0) return value
  }
  throw new RangeError('length prefix incomplete')
}

export function encodeAdmin(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v))
}

/** A remote admin call that gave no result: the target's refusal, or an exchange that failed. */
export class AdminCallError extends Error {
  override name = 'AdminCallError'
  constructor(
    readonly code: AdminCallCode,
    message: string
  ) {
    super(message)
  }
}

let counter = 0

/** One admin request to `target`; its result, or an AdminCallError. `timeoutMs` bounds the whole exchange. */
export async function callPeer(
  node: PhysarumNode,
  target: PeerId,
  req: Omit<AdminRequest, 'v' | 'id'>,
  opts: { timeoutMs: number }
): Promise<Record<string, unknown>> {
  const signal = AbortSignal.timeout(opts.timeoutMs)
  const full: AdminRequest = { v: 1, id: `${Date.now().toString(36)}-${(counter++).toString(36)}`, ...req }
  let stream
  try {
    stream = await node.dialProtocol(target, ADMIN_PROTOCOL, {
      signal: AbortSignal.any([signal, AbortSignal.timeout(ADMIN_DIAL_TIMEOUT_MS)])
    })
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]
    throw new AdminCallError(
      'UNREACHABLE',
      /protocol selection failed|not supported/i.test(msg)
        ? `${target.toString()} takes no admin requests (not an allocator, or an older version)`
        : `${target.toString()} cannot be reached: ${msg}`
    )
  }
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_ADMIN_MESSAGE })
    await lp.write(encodeAdmin(full), { signal })
    const raw = await lp.read({ signal })
    let res: unknown
    try {
      res = JSON.parse(new TextDecoder().decode(raw.subarray()))
    } catch {
      throw new AdminCallError('BAD_RESPONSE', `${target.toString()} sent an answer that is not JSON`)
    }
    if (!validateAdminResponse(res))
      throw new AdminCallError(
        'BAD_RESPONSE',
        `${target.toString()} sent an invalid answer: ${ajv.errorsText(validateAdminResponse.errors)}`
      )
    await stream.close().catch(() => {})
    if (!res.ok) throw new AdminCallError(res.error.code, res.error.message)
    return res.result
  } catch (err) {
    stream.abort(err as Error)
    if (err instanceof AdminCallError) throw err
    throw new AdminCallError(
      signal.aborted ? 'TIMEOUT' : 'UNREACHABLE',
      signal.aborted
        ? `${target.toString()} did not answer within ${Math.round(opts.timeoutMs / 1000)} s`
        : `the admin exchange with ${target.toString()} failed: ${(err as Error).message.split('\n')[0]}`
    )
  }
}
