// The registration API's messages (admin API bodies): register, refresh (TTL pass) and
// deregister, with their schemas; the admin server validates every body against them.
import { APP_NAME_PATTERN } from '../config/schema.js'
import type { FromSchema } from '../util/ajv.js'
import { MAX_INTERVAL_S, MAX_TTL_S, MIN_INTERVAL_S, MIN_TTL_S } from './constants.js'

const app = {
  type: 'string',
  pattern: APP_NAME_PATTERN,
  maxLength: 128,
  description: 'The app (a catalog name).'
} as const
const address = {
  type: 'string',
  maxLength: 300,
  pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^:\\s\\[\\]]+):[0-9]{1,5}$',
  description: 'HOST:PORT of the instance, where this agent reaches it.'
} as const

export const registerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['app', 'address'],
  properties: {
    app,
    address,
    check: {
      type: 'object',
      additionalProperties: false,
      description:
        "How the instance is checked: an HTTP GET of a path, or a TCP connect (default: the catalog's Health).",
      properties: {
        http: {
          type: 'string',
          pattern: '^/',
          maxLength: 1024,
          description: 'Path of an HTTP GET that answers < 500.'
        },
        tcp: { type: 'boolean', description: 'A TCP connect instead of an HTTP GET.' },
        intervalS: { type: 'number', minimum: MIN_INTERVAL_S, maximum: MAX_INTERVAL_S, description: 'Between checks.' }
      },
      not: { required: ['http', 'tcp'] }
    },
    protocol: {
      enum: ['http1', 'h2c', 'grpc'],
      description: "What the instance speaks (default: the catalog's Protocol of the app, else http1)."
    },
    ttlS: {
      type: 'number',
      minimum: MIN_TTL_S,
      maximum: MAX_TTL_S,
      description: 'Withdrawn unless refreshed within this long (none: until deregistered).'
    }
  }
} as const

/** Refresh (a TTL pass) or deregister: one registration (address given) or every one of the app. */
export const selectSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['app'],
  properties: { app, address }
} as const

export type RegisterRequest = FromSchema<typeof registerSchema>
export type SelectRequest = FromSchema<typeof selectSchema>
