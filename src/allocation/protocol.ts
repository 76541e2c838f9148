// Wire protocol of allocation, /physarum/alloc/1.0.0: one length-prefixed JSON request
// {v, id, app, requirements?} answered by {ok: true, instance} or {ok: false, error}.
// Both directions are validated with ajv; this module holds the schema and the client.
import { ajv, type FromSchema } from '../util/ajv.js'
import { lpStream } from '@libp2p/utils'
import type { PeerId } from '@libp2p/interface'
import type { PhysarumNode } from '../cluster/node.js'
import { APP_NAME_PATTERN } from '../config/schema.js'
import { ALLOCATION_TIMEOUT_MS } from './constants.js'

export const ALLOC_PROTOCOL = '/physarum/alloc/1.0.0'
export const MAX_ALLOC_MESSAGE = 16 * 1024

/** Why an allocator refused, as it says on the wire. */
export type AllocErrorCode =
  | 'UNKNOWN_APP'
  | 'NO_CAPACITY'
  | 'START_FAILED'
  | 'NOT_READY'
  | 'RATE_LIMITED'
  | 'DRAINING'
  | 'BAD_REQUEST'
  | 'INTERNAL'
/** Why the client got no instance: the allocator's refusal, or the exchange itself failed. */
export type AllocationErrorCode = AllocErrorCode | 'UNREACHABLE' | 'TIMEOUT' | 'BAD_RESPONSE'

const requestSchema = {
  type: 'object',
  required: ['v', 'id', 'app'],
  additionalProperties: false,
  properties: {
    v: { const: 1 },
    /** Request id chosen by the client, echoed back. */
    id: { type: 'string', minLength: 1, maxLength: 128 },
    app: { type: 'string', pattern: APP_NAME_PATTERN },
    requirements: {
      type: 'object',
      additionalProperties: false,
      /** fresh: start a new instance even when one is ready here (scale out). */
      properties: { fresh: { type: 'boolean' } }
    }
  }
} as const

export type AllocRequest = FromSchema<typeof requestSchema>

export interface InstanceInfo {
  id: string
  app: string
  /** Peer ID of the allocator that hosts it. */
  peer: string
  state: 'ready'
  /** Whether this request started it (a cold start) or found it running. */
  started: boolean
  /** Time from the request to readiness (ms). */
  readyMs: number
}

export type AllocResponse =
  | { v: 1; id: string; ok: true; instance: InstanceInfo }
  | { v: 1; id: string; ok: false; error: { code: AllocErrorCode; message: string } }

export const validateRequest = ajv.compile<AllocRequest>(requestSchema)

export const validateResponse = ajv.compile<AllocResponse>({
  type: 'object',
  required: ['v', 'id', 'ok'],
  properties: {
    v: { const: 1 },
    id: { type: 'string', maxLength: 128 },
    ok: { type: 'boolean' },
    instance: {
      type: 'object',
      required: ['id', 'app', 'peer', 'state'],
      properties: {
        id: { type: 'string', maxLength: 128 },
        app: { type: 'string', maxLength: 128 },
        peer: { type: 'string', maxLength: 128 },
        state: { const: 'ready' },
        started: { type: 'boolean' },
        readyMs: { type: 'number' }
      }
    },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', maxLength: 64 }, message: { type: 'string', maxLength: 4096 } }
    }
  },
  if: { properties: { ok: { const: true } } },
  then: { required: ['instance'] },
  else: { required: ['error'] }
})

export function encode(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v))
}

/**
 * An allocation that gave no instance: thrown by the instance manager for a refusal (the
 * server sends its code and message as they are) and by the client, for the allocator's
 * refusal or an exchange that failed.
 */
export class AllocationError extends Error {
  override name = 'AllocationError'
  constructor(
    readonly code: AllocationErrorCode,
    message: string
  ) {
    super(message)
  }
}

let counter = 0

/** Asks one allocator for a ready instance of `app`; resolves when it is ready. */
export async function requestAllocation(
  node: PhysarumNode,
  allocator: PeerId,
  app: string,
  opts: { fresh?: boolean; timeoutMs?: number; signal?: AbortSignal } = {}
): Promise<InstanceInfo> {
  const timeoutMs = opts.timeoutMs ?? ALLOCATION_TIMEOUT_MS
  const signal =
    opts.signal !== undefined
      ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs)
  const id = `${Date.now().toString(36)}-${(counter++).toString(36)}`
  const req: AllocRequest = { v: 1, id, app, ...(opts.fresh === true ? { requirements: { fresh: true } } : {}) }
  let stream
  try {
    stream = await node.dialProtocol(allocator, ALLOC_PROTOCOL, { signal })
  } catch (err) {
    throw new AllocationError(
      signal.aborted ? 'TIMEOUT' : 'UNREACHABLE',
      `cannot reach allocator ${allocator.toString()}: ${(err as Error).message}`
    )
  }
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_ALLOC_MESSAGE })
    await lp.write(encode(req), { signal })
    const raw = await lp.read({ signal })
    let res: unknown
    try {
      res = JSON.parse(new TextDecoder().decode(raw.subarray()))
    } catch {
      throw new AllocationError('BAD_RESPONSE', 'allocator sent a response that is not JSON')
    }
    if (!validateResponse(res))
      throw new AllocationError(
        'BAD_RESPONSE',
        `allocator sent an invalid response: ${ajv.errorsText(validateResponse.errors)}`
      )
    await stream.close().catch(() => {})
    if (!res.ok) throw new AllocationError(res.error.code as AllocErrorCode, res.error.message)
    return res.instance
  } catch (err) {
    stream.abort(err as Error)
    if (err instanceof AllocationError) throw err
    throw new AllocationError(
      signal.aborted ? 'TIMEOUT' : 'UNREACHABLE',
      `allocation of ${app} on ${allocator.toString()} failed: ${(err as Error).message}`
    )
  }
}
