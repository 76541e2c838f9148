// Wire protocol of membership on gossipsub: the full announcement on /physarum/members/1
// (on join, on leave, on request and rarely after changes) and the delta on
// /physarum/delta/1 (what changed since the member's previous version, see delta.ts).
// Validated with ajv; unknown fields are tolerated so that newer peers can add some, but
// sizes are bounded so that no peer can bloat the table.
import { ajv, type FromSchema } from '../../util/ajv.js'
import type { ValidateFunction } from 'ajv'
import { scaleTableSchema } from '../../scale/protocol.js'

export const MEMBERS_TOPIC = '/physarum/members/1'
/** A member that missed a probe: others probe it at once, so that all reach a verdict together. */
export const SUSPECT_TOPIC = '/physarum/suspect/1'
/**
 * Deltas: a member's changes as small versioned messages (delta.ts). A topic of its own, so that a peer that predates
 * it (and would reject a delta as a malformed announcement) never receives one.
 */
export const DELTA_TOPIC = '/physarum/delta/1'
export const MAX_ANNOUNCEMENT_BYTES = 64 * 1024

const shortString = { type: 'string', maxLength: 256 } as const

// Per app and member, as an allocator's instance manager (localState) and a server-mode
// proxy send it and placement reads it. ids and starting are optional: a peer may omit them.
export const appInstancesSchema = {
  type: 'object',
  required: ['ready', 'inFlight'],
  properties: {
    ready: {
      type: 'integer',
      minimum: 0,
      maximum: 1000000,
      description: 'Instances that passed their readiness check.'
    },
    inFlight: {
      type: 'integer',
      minimum: 0,
      maximum: 100000000,
      description: 'Requests in flight across those instances.'
    },
    // At most an app's largest MaxInstances (10000) per member; the forwarding frame's bounds.
    ids: {
      type: 'array',
      maxItems: 10000,
      items: { type: 'string', minLength: 1, maxLength: 128 },
      description: 'IDs of the ready instances: placement sends a request to one of them by its ID.'
    },
    starting: { type: 'integer', minimum: 0, maximum: 1000000, description: 'Instances started, not ready yet.' },
    // For `physarum apps`: where each instance is and how it is doing (the first few per app).
    detail: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        required: ['id', 'state', 'inFlight'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 128 },
          address: { type: 'string', maxLength: 300 },
          state: { type: 'string', maxLength: 32 },
          inFlight: { type: 'integer', minimum: 0, maximum: 100000000 }
        }
      },
      description: 'Each instance: its ID, HOST:PORT on its host, state and requests in flight.'
    }
  }
} as const

export const announcementSchema = {
  type: 'object',
  required: ['v', 'peer', 'roles', 'addrs', 'version', 'seq', 'ts'],
  properties: {
    v: { const: 1 },
    peer: { type: 'string', pattern: '^[1-9A-HJ-NP-Za-km-z]{40,128}$' },
    roles: { type: 'array', maxItems: 16, items: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}$' } },
    addrs: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 1024 } },
    version: shortString,
    catalog: { type: 'array', maxItems: 1000, items: shortString },
    instances: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: shortString,
      additionalProperties: appInstancesSchema
    },
    capacity: {
      type: 'object',
      maxProperties: 64,
      propertyNames: shortString,
      additionalProperties: { type: 'number' }
    },
    seq: { type: 'integer', minimum: 0 },
    ts: { type: 'number', minimum: 0 },
    leaving: { type: 'boolean' },
    // An allocator under a planned drain: `members` shows it, and no proxy asks it for an instance.
    drain: { enum: ['draining', 'maintenance'] },
    scale: scaleTableSchema
  }
} as const

// Types from the schemas: unknown fields stay on the object, typed unknown.
export type AppInstances = FromSchema<typeof appInstancesSchema>
type WireAnnouncement = FromSchema<typeof announcementSchema>
/** A decoded announcement: catalog, instances and capacity, which a peer may leave out, filled in. */
export type Announcement = WireAnnouncement & Required<Pick<WireAnnouncement, 'catalog' | 'instances' | 'capacity'>>

const validate = ajv.compile<WireAnnouncement>(announcementSchema)

export type DecodeResult =
  { ok: true; announcement: Announcement } | { ok: false; reason: 'oversized' | 'malformed'; message: string }

/** Parses one JSON message of a membership topic and validates it; never throws. */
function decodeJson<T>(
  data: Uint8Array,
  check: ValidateFunction<T>
): { ok: true; value: T } | { ok: false; reason: 'oversized' | 'malformed'; message: string } {
  if (data.byteLength > MAX_ANNOUNCEMENT_BYTES)
    return { ok: false, reason: 'oversized', message: `${data.byteLength} bytes > ${MAX_ANNOUNCEMENT_BYTES}` }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
  } catch (err) {
    return { ok: false, reason: 'malformed', message: `not UTF-8 JSON: ${(err as Error).message}` }
  }
  if (!check(value)) {
    const e = check.errors?.[0]
    return {
      ok: false,
      reason: 'malformed',
      message: `${e?.instancePath === '' ? '(top)' : e?.instancePath} ${e?.message ?? 'invalid'}`
    }
  }
  return { ok: true, value }
}

/** Parses and validates one announcement; never throws. */
export function decodeAnnouncement(data: Uint8Array): DecodeResult {
  const r = decodeJson(data, validate)
  if (!r.ok) return r
  const value = r.value
  value.catalog ??= []
  value.instances ??= {}
  value.capacity ??= {}
  return { ok: true, announcement: value as Announcement }
}

/**
 * The announcement's bytes. One that would be over MAX_ANNOUNCEMENT_BYTES (peers drop it) goes without the
 * per-instance detail, which only `physarum apps` reads: the counts and IDs that placement needs stay.
 */
export function encodeAnnouncement(a: Announcement): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(a))
  if (bytes.byteLength <= MAX_ANNOUNCEMENT_BYTES) return bytes
  const instances: Announcement['instances'] = {}
  for (const [app, i] of Object.entries(a.instances)) {
    const { detail: _detail, ...rest } = i
    instances[app] = rest
  }
  return new TextEncoder().encode(JSON.stringify({ ...a, instances }))
}

/**
 * What changed in a member's state between its version seq − 1 and seq: whole top-level fields in `set` (or named in
 * `unset`), and per app and per capacity key the new value (null: gone). A receiver that holds version seq − 1 applies
 * it; one that holds less asks the member for its full state instead (a version gap), one that holds seq or more
 * drops it (stale or duplicate).
 */
export const deltaSchema = {
  type: 'object',
  required: ['v', 'peer', 'seq', 'ts'],
  properties: {
    v: { const: 1 },
    peer: announcementSchema.properties.peer,
    seq: { type: 'integer', minimum: 1 },
    ts: { type: 'number', minimum: 0 },
    set: {
      type: 'object',
      properties: {
        roles: announcementSchema.properties.roles,
        addrs: announcementSchema.properties.addrs,
        version: shortString,
        catalog: announcementSchema.properties.catalog,
        drain: announcementSchema.properties.drain,
        scale: scaleTableSchema
      }
    },
    unset: { type: 'array', maxItems: 8, items: { enum: ['drain', 'scale'] } },
    instances: {
      type: 'object',
      maxProperties: 1000,
      propertyNames: shortString,
      additionalProperties: { anyOf: [appInstancesSchema, { type: 'null' }] }
    },
    capacity: {
      type: 'object',
      maxProperties: 64,
      propertyNames: shortString,
      additionalProperties: { type: ['number', 'null'] }
    }
  }
} as const

export type Delta = FromSchema<typeof deltaSchema>

const validateDelta = ajv.compile<Delta>(deltaSchema)

export type DeltaDecodeResult =
  { ok: true; delta: Delta } | { ok: false; reason: 'oversized' | 'malformed'; message: string }

/** Parses and validates one delta; never throws. */
export function decodeDelta(data: Uint8Array): DeltaDecodeResult {
  const r = decodeJson(data, validateDelta)
  return r.ok ? { ok: true, delta: r.value } : r
}

export function encodeDelta(d: Delta): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(d))
}

const suspectSchema = {
  type: 'object',
  required: ['v', 'peer', 'suspect', 'ts'],
  properties: {
    v: { const: 1 },
    peer: announcementSchema.properties.peer,
    suspect: announcementSchema.properties.peer,
    ts: { type: 'number', minimum: 0 }
  }
} as const

export type SuspectNotice = FromSchema<typeof suspectSchema>

const suspectValidate = ajv.compile<SuspectNotice>(suspectSchema)

export function encodeSuspect(n: SuspectNotice): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(n))
}

export function decodeSuspect(data: Uint8Array): SuspectNotice | undefined {
  if (data.byteLength > 1024) return undefined
  try {
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
    return suspectValidate(v) ? v : undefined
  } catch {
    return undefined
  }
}
