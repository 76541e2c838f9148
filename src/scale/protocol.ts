// Wire form of the cluster's scale records: an app's warm minimum and maximum across the
// cluster, set by `physarum scale` on any agent and spread in every member's announcement
// (the `scale` field of /physarum/members/1), last writer wins by (version, by).
import type { FromSchema } from '../util/ajv.js'

/** Largest min or max a record may name: the announcement's instance bound per member. */
export const MAX_SCALE = 10000

export const scaleRecordSchema = {
  type: 'object',
  required: ['min', 'version', 'by'],
  properties: {
    min: { type: 'integer', minimum: 0, maximum: MAX_SCALE, description: 'Warm instances kept across the cluster.' },
    max: {
      type: 'integer',
      minimum: 0,
      maximum: MAX_SCALE,
      description: 'Instances never exceeded across the cluster.'
    },
    // A time in ms where it was set, bumped past the record it replaces: the later setting wins.
    version: { type: 'integer', minimum: 0, description: 'Orders records of one app: the higher wins.' },
    by: { type: 'string', maxLength: 128, description: 'Peer ID of the agent that set it; breaks a tie of versions.' }
  }
} as const

/** Scale records a cluster holds at most: at ~100 bytes each, 200 fit well in an announcement. */
export const MAX_SCALE_RECORDS = 200

/** An announcement's scale table: app → record. */
export const scaleTableSchema = {
  type: 'object',
  maxProperties: MAX_SCALE_RECORDS,
  propertyNames: { type: 'string', maxLength: 256 },
  additionalProperties: scaleRecordSchema
} as const

export type ScaleRecord = FromSchema<typeof scaleRecordSchema>

/** Whether `a` replaces `b` (last writer wins; a tie of versions goes to the larger peer ID). */
export function newer(a: ScaleRecord, b: ScaleRecord | undefined): boolean {
  return b === undefined || a.version > b.version || (a.version === b.version && a.by > b.by)
}

/** The admin API's POST /v1/scale body. */
export const scaleRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['app', 'min'],
  properties: {
    app: { type: 'string', maxLength: 128 },
    min: scaleRecordSchema.properties.min,
    max: scaleRecordSchema.properties.max
  }
} as const

export type ScaleRequest = FromSchema<typeof scaleRequestSchema>
