// The local side of remote administration: POST /v1/remote/drain on an agent's loopback admin API (token-checked like
// every state-changing call) carries `physarum drain PEER` for an allocator on another host over
// /physarum/admin/1.0.0, with this agent's identity, which the target must list in its Admin.Operators. Each way it
// can fail (unknown peer, not an allocator, unreachable, not authorized, already draining) is one admin error.
import { peerIdFromString } from '@libp2p/peer-id'
import type { PhysarumNode } from '../node.js'
import type { Membership } from '../membership/membership.js'
import type { AdminServer } from './server.js'
import { AdminError, type AdminErrorCode } from './errors.js'
import { AdminCallError, callPeer, type AdminCallCode } from './protocol.js'
import type { FromSchema } from '../../util/ajv.js'
import { ADMIN_ANSWER_SLACK_MS, REMOTE_DRAIN_DEADLINE_S } from './constants.js'

export const remoteDrainSchema = {
  type: 'object',
  required: ['peer'],
  additionalProperties: false,
  properties: {
    peer: { type: 'string', minLength: 1, maxLength: 128 },
    undo: { type: 'boolean' },
    deadlineS: { type: 'number', minimum: 0, maximum: 86400 }
  }
} as const
export type RemoteDrainBody = FromSchema<typeof remoteDrainSchema>

const STATUS_OF: Record<AdminCallCode, AdminErrorCode> = {
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_AUTHORIZED: 'FORBIDDEN',
  CONFLICT: 'CONFLICT',
  UNSUPPORTED: 'REFUSED',
  INTERNAL: 'UNREACHABLE',
  UNREACHABLE: 'UNREACHABLE',
  TIMEOUT: 'TIMEOUT',
  BAD_RESPONSE: 'UNREACHABLE'
}

export function remoteAdminRoutes(
  admin: AdminServer,
  components: { node: PhysarumNode; membership: Membership }
): void {
  const { node, membership } = components
  admin.mutation<RemoteDrainBody>({
    method: 'POST',
    path: '/v1/remote/drain',
    schema: remoteDrainSchema,
    handle: async body => {
      let target
      try {
        target = peerIdFromString(body.peer)
      } catch {
        throw new AdminError('BAD_REQUEST', `${JSON.stringify(body.peer)} is not a peer ID`)
      }
      const self = node.peerId.toString()
      if (body.peer === self)
        throw new AdminError('BAD_REQUEST', `${self} is this agent itself: ask its own POST /v1/drain`)
      const m = membership.table.get(body.peer)
      if (m === undefined)
        throw new AdminError('NOT_FOUND', `unknown peer ${body.peer}: not a member of the cluster that ${self} sees`)
      if (!m.announcement.roles.includes('allocator'))
        throw new AdminError('REFUSED', `${body.peer} is a ${m.announcement.roles.join('/')}, not an allocator`)
      if (m.status === 'failed' || m.status === 'left')
        throw new AdminError('UNREACHABLE', `${body.peer} cannot be reached: it is ${m.status} in the member table`)
      const deadlineS = body.deadlineS ?? REMOTE_DRAIN_DEADLINE_S
      try {
        return await callPeer(node, target, body.undo === true ? { op: 'undo' } : { op: 'drain', deadlineS }, {
          timeoutMs: (body.undo === true ? 0 : deadlineS * 1000) + ADMIN_ANSWER_SLACK_MS
        })
      } catch (err) {
        if (err instanceof AdminCallError) throw new AdminError(STATUS_OF[err.code], err.message)
        throw err
      }
    }
  })
}
