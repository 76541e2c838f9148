// Wire protocol of the SWIM failure detector, /physarum/swim/1.0.0: one long-lived stream
// per pair of members, both ways, carrying length-prefixed JSON frames (ping, ack, ping-req,
// nack, gossip, sync), each with state changes piggybacked. Validated with ajv; unknown
// fields are tolerated (newer peers), sizes bounded. The sender is the stream's
// authenticated peer, never a field of the message.
import { ajv, type FromSchema } from '../../util/ajv.js'
import { MAX_PIGGYBACK, MAX_STATES_PER_FRAME, MAX_SWIM_FRAME, MAX_SYNC_MEMBERS } from './constants.js'
import { announcementSchema, type Announcement } from './announcement.js'

export const SWIM_PROTOCOL = '/physarum/swim/1.0.0'

const peer = { type: 'string', pattern: '^[1-9A-HJ-NP-Za-km-z]{40,128}$' } as const
const addrs = { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 512 } } as const

export const coordinateSchema = {
  type: 'object',
  required: ['vec', 'error', 'adjustment', 'height'],
  properties: {
    vec: { type: 'array', minItems: 1, maxItems: 32, items: { type: 'number' } },
    error: { type: 'number' },
    adjustment: { type: 'number' },
    height: { type: 'number', minimum: 0 }
  }
} as const

/**
 * A coordinate in an ack, compactly: base64 of little-endian float32s [error, adjustment, height, ...vec] (4 to 35 of
 * them). 60 characters for Serf's 8 dimensions where the object form takes ~150: the ack is most of what SWIM sends at
 * rest. float32's 7 digits are far finer than any RTT estimate needs.
 */
const compactCoordinate = { type: 'string', minLength: 24, maxLength: 188, pattern: '^[A-Za-z0-9+/]+={0,2}$' } as const

/** One member's state as the failure detector knows it: what updates and push-pulls carry. */
export const updateSchema = {
  type: 'object',
  required: ['peer', 's', 'inc'],
  properties: {
    peer,
    s: { enum: ['alive', 'suspect', 'failed', 'left'] },
    /** The member's incarnation: only it raises its own, to refute a suspicion. */
    inc: { type: 'integer', minimum: 0 },
    /** Who suspects or failed it (suspect, failed): confirmations count distinct reporters. */
    by: peer,
    /** Where to reach it (alive). */
    addrs,
    /** Its network coordinate, when known (a join's push-pull). */
    coord: coordinateSchema,
    /**
     * The version (seq) of its announcement as the sender holds it (push-pull): a receiver that holds an older one
     * missed a delta and asks the member for its full state. Absent from older peers' frames.
     */
    ver: { type: 'integer', minimum: 0 }
  }
} as const

const updates = { type: 'array', maxItems: MAX_PIGGYBACK * 4, items: updateSchema } as const
const seq = { type: 'integer', minimum: 0 } as const

export const swimMessageSchema = {
  oneOf: [
    {
      type: 'object',
      required: ['v', 't', 'seq'],
      properties: {
        v: { const: 1 },
        t: { enum: ['ping', 'ack', 'nack'] },
        seq,
        updates,
        /** The sender's own coordinate (an ack; older peers' pings too): the prober's Vivaldi sample. */
        coord: coordinateSchema,
        /** The same, compact (what this version sends; `coord` comes from older peers). */
        co: compactCoordinate
      }
    },
    {
      type: 'object',
      required: ['v', 't', 'seq', 'target'],
      properties: { v: { const: 1 }, t: { const: 'ping-req' }, seq, target: peer, updates }
    },
    {
      type: 'object',
      required: ['v', 't', 'updates'],
      properties: { v: { const: 1 }, t: { const: 'gossip' }, updates }
    },
    {
      type: 'object',
      required: ['v', 't', 'members', 'reply'],
      properties: {
        v: { const: 1 },
        t: { const: 'sync' },
        /** Whether the receiver should answer with its own state (the push half asks for the pull). */
        reply: { type: 'boolean' },
        /** A newcomer's first contact: the receiver also sends the announcements it holds ('states'). */
        join: { type: 'boolean' },
        /**
         * A periodic push-pull's digest of the sender's view (swim.ts viewDigest), with only the sender's own entry in
         * `members`: a receiver whose view has the same digest answers nothing; one whose view differs answers with
         * its whole state and asks for the sender's. Older peers ignore it and answer in full.
         */
        digest: { type: 'string', pattern: '^[0-9a-f]{16}$' },
        members: { type: 'array', maxItems: MAX_SYNC_MEMBERS, items: updateSchema }
      }
    },
    {
      // The sender's own announcement, straight from it (so no signature is needed: the stream is its), to a member
      // that does not have it yet: a newcomer learns every member's state from each member, not by replay.
      type: 'object',
      required: ['v', 't', 'reply', 'announcement'],
      properties: {
        v: { const: 1 },
        t: { const: 'state' },
        reply: { type: 'boolean' },
        announcement: announcementSchema
      }
    },
    {
      // The announcements a member holds, to a newcomer that joined through it: second-hand (its own aside), so
      // taken only for members the newcomer has none of, and replaced by the first first-hand one whatever its seq.
      type: 'object',
      required: ['v', 't', 'announcements'],
      properties: {
        v: { const: 1 },
        t: { const: 'states' },
        announcements: { type: 'array', maxItems: MAX_STATES_PER_FRAME, items: announcementSchema }
      }
    }
  ]
} as const

export type Update = FromSchema<typeof updateSchema>
export type MemberState = Update['s']
export type WireCoordinate = FromSchema<typeof coordinateSchema>

export type SwimMessage =
  | { v: 1; t: 'ping' | 'ack' | 'nack'; seq: number; updates?: Update[]; coord?: WireCoordinate; co?: string }
  | { v: 1; t: 'ping-req'; seq: number; target: string; updates?: Update[] }
  | { v: 1; t: 'gossip'; updates: Update[] }
  | { v: 1; t: 'sync'; reply: boolean; join?: boolean; digest?: string; members: Update[] }
  | { v: 1; t: 'states'; announcements: Announcement[] }
  | { v: 1; t: 'state'; reply: boolean; announcement: Announcement }

const validate = ajv.compile<SwimMessage>(swimMessageSchema)

export type SwimDecodeResult = { ok: true; message: SwimMessage } | { ok: false; message: string }

/** Parses and validates one frame; never throws. */
export function decodeSwim(data: Uint8Array): SwimDecodeResult {
  if (data.byteLength > MAX_SWIM_FRAME) return { ok: false, message: `${data.byteLength} bytes > ${MAX_SWIM_FRAME}` }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
  } catch (err) {
    return { ok: false, message: `not UTF-8 JSON: ${(err as Error).message}` }
  }
  if (!validate(value)) {
    const e = validate.errors?.[0]
    return { ok: false, message: `${e?.instancePath === '' ? '(top)' : e?.instancePath} ${e?.message ?? 'invalid'}` }
  }
  return { ok: true, message: value }
}

export function encodeSwim(m: SwimMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m))
}

/** A coordinate's compact form (the `co` of an ack). */
export function encodeCoordinate(c: WireCoordinate): string {
  const f = new Float32Array(3 + c.vec.length)
  f[0] = c.error
  f[1] = c.adjustment
  f[2] = c.height
  f.set(c.vec, 3)
  return Buffer.from(f.buffer).toString('base64')
}

/** The coordinate in a compact form, or undefined when it is not one (length, non-finite numbers, negative height). */
export function decodeCoordinate(co: string): WireCoordinate | undefined {
  const bytes = Buffer.from(co, 'base64')
  if (bytes.byteLength % 4 !== 0 || bytes.byteLength < 16 || bytes.byteLength > 4 * 35) return undefined
  const f = new Float32Array(bytes.byteLength / 4)
  new Uint8Array(f.buffer).set(bytes)
  if (!f.every(Number.isFinite) || f[2] < 0) return undefined
  return { error: f[0], adjustment: f[1], height: f[2], vec: Array.from(f.subarray(3)) }
}
