// Wire protocol of the local fast path: a proxy and an allocator on one host, the proxy sending requests straight
// to the allocator's instances over loopback (no libp2p hop). Each sync is one token-checked POST to the allocator's
// loopback admin API: the proxy reports what it sends to each instance (in flight, begun since its last report), so
// that the allocator counts it for idle culling, drains and load; the answer lists the instances that take new
// requests and where they listen (127.0.0.1:PORT). Addresses travel only here, never by gossip: a proxy takes them
// only from an admin API it found in this user's runtime directory, with this user's token.
import { ajv, type FromSchema } from '../util/ajv.js'

/** The admin route (a mutation: POST, token-checked). */
export const FASTPATH_PATH = '/v1/fastpath'

const peerId = { type: 'string', pattern: '^[1-9A-HJ-NP-Za-km-z]{40,128}$' } as const
const instanceId = { type: 'string', minLength: 1, maxLength: 128 } as const

export const reportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'proxy', 'ack', 'instances'],
  properties: {
    v: { const: 1 },
    proxy: peerId,
    /** The seq of the last answer the proxy applied: from then on it sends only to the instances that one listed. */
    ack: { type: 'integer', minimum: 0 },
    instances: {
      type: 'object',
      maxProperties: 10000,
      propertyNames: instanceId,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['inFlight', 'begun'],
        properties: {
          inFlight: { type: 'integer', minimum: 0, maximum: 100000000 },
          begun: { type: 'integer', minimum: 0 }
        }
      }
    }
  }
} as const
export type Report = FromSchema<typeof reportSchema>

export const answerSchema = {
  type: 'object',
  required: ['v', 'peer', 'seq', 'draining', 'instances'],
  properties: {
    v: { const: 1 },
    /** The allocator's peer ID: the proxy checks it against the runtime record it dialled. */
    peer: peerId,
    seq: { type: 'integer', minimum: 1 },
    draining: { type: 'boolean' },
    instances: {
      type: 'array',
      maxItems: 10000,
      items: {
        type: 'object',
        required: ['id', 'app', 'host', 'port', 'protocol'],
        properties: {
          id: instanceId,
          app: { type: 'string', minLength: 1, maxLength: 256 },
          host: { type: 'string', minLength: 1, maxLength: 64 },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          protocol: { enum: ['http1', 'h2c', 'grpc'] }
        }
      }
    }
  }
} as const
export type Answer = FromSchema<typeof answerSchema>
export type ListedInstance = Answer['instances'][number]

export const validateAnswer = ajv.compile<Answer>(answerSchema)

/** Whether a host is a loopback address: the only kind the fast path dials (an instance is bound to 127.0.0.1). */
export function isLoopback(host: string): boolean {
  return /^127(\.\d{1,3}){3}$/.test(host) || host === '::1' || host === 'localhost'
}
