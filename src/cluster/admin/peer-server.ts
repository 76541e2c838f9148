// Server side of /physarum/admin/1.0.0 (./protocol.ts has the wire format and why the authorization is an allowlist
// of peer IDs): a peer not in Admin.Operators is refused whatever it asks (its request is not parsed); a malformed
// request gets a one-line BAD_REQUEST and the stream is reset; the daemon keeps running whatever arrives. Every
// refusal is logged.
import { lpStream, InvalidDataLengthError, InvalidDataLengthLengthError } from '@libp2p/utils'
import type { Connection, Startable, Stream } from '@libp2p/interface'
import type { PhysarumNode } from '../node.js'
import { debugOn, type Logger } from '../../util/log.js'
import {
  ADMIN_ANSWER_TIMEOUT_MS,
  ADMIN_REQUEST_READ_TIMEOUT_MS,
  MAX_ADMIN_MESSAGE,
  MAX_INBOUND_ADMIN_STREAMS
} from './constants.js'
import {
  ADMIN_PROTOCOL,
  AdminCallError,
  boundedLengthDecoder,
  encodeAdmin,
  validateAdminRequest,
  type AdminRequest,
  type AdminResponse,
  type AdminWireCode
} from './protocol.js'

/** Carries out an authorized, valid request; throws an AdminCallError with a wire code to refuse. */
export type AdminHandler = (req: AdminRequest, from: string) => Promise<object>

export class AdminPeerServer implements Startable {
  private operators: Set<string>

  constructor(
    private readonly components: { node: PhysarumNode; log: Logger; handle: AdminHandler },
    init: { operators: readonly string[] }
  ) {
    this.operators = new Set(init.operators)
  }

  /** A new allowlist (a config reload): it applies to the next request. */
  setOperators(operators: readonly string[]): void {
    this.operators = new Set(operators)
  }

  async start(): Promise<void> {
    await this.components.node.handle(
      ADMIN_PROTOCOL,
      async (stream: Stream, connection: Connection) => {
        await this.onStream(stream, connection)
      },
      { maxInboundStreams: MAX_INBOUND_ADMIN_STREAMS }
    )
  }

  async stop(): Promise<void> {
    await this.components.node
      .unhandle(ADMIN_PROTOCOL)
      .catch(debugOn(this.components.log, 'unhandle of the admin protocol'))
  }

  private async onStream(stream: Stream, connection: Connection): Promise<void> {
    const { log } = this.components
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_ADMIN_MESSAGE, lengthDecoder: boundedLengthDecoder })
    let id = ''
    const answer = async (res: AdminResponse, reset = false): Promise<void> => {
      try {
        await lp.write(encodeAdmin(res), { signal: AbortSignal.timeout(ADMIN_ANSWER_TIMEOUT_MS) })
        if (!reset) await stream.close({ signal: AbortSignal.timeout(ADMIN_ANSWER_TIMEOUT_MS) })
      } catch (err) {
        stream.abort(err as Error)
        return
      }
      // The answer is written ahead of the reset on the same connection, so it still reaches a reading peer.
      if (reset) stream.abort(new Error(`admin request refused: ${res.ok ? '' : res.error.message}`))
    }
    const refuse = async (code: AdminWireCode, message: string, reset = false): Promise<void> => {
      log.warn(`admin request from ${from} refused: ${message}`)
      await answer({ v: 1, id, ok: false, error: { code, message } }, reset)
    }
    let raw
    try {
      raw = await lp.read({ signal: AbortSignal.timeout(ADMIN_REQUEST_READ_TIMEOUT_MS) })
    } catch (err) {
      if (err instanceof InvalidDataLengthError || err instanceof InvalidDataLengthLengthError) {
        await refuse('BAD_REQUEST', `request larger than ${MAX_ADMIN_MESSAGE} bytes, or a broken length prefix`, true)
        return
      }
      log.debug(`admin stream from ${from} ended before a request: ${(err as Error).message}`)
      stream.abort(err as Error)
      return
    }
    // Whatever it asks, a peer that may not administer this one costs a line and changes nothing: its request is
    // read (bounded: the caller's write must complete for it to read the answer) but never parsed.
    if (!this.operators.has(from)) {
      await refuse(
        'NOT_AUTHORIZED',
        `not authorized: ${this.components.node.peerId.toString()} takes admin requests only from the peers in its Admin.Operators, and ${from} is not one`
      )
      return
    }
    let req: unknown
    try {
      req = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray()))
    } catch {
      await refuse('BAD_REQUEST', 'request is not UTF-8 JSON', true)
      return
    }
    if (typeof req === 'object' && req !== null && typeof (req as { id?: unknown }).id === 'string')
      id = (req as { id: string }).id.slice(0, 128)
    if (!validateAdminRequest(req)) {
      const e = validateAdminRequest.errors?.[0]
      const why = [e?.instancePath, e?.message].filter(x => x !== undefined && x !== '').join(' ')
      await refuse('BAD_REQUEST', `invalid request: ${why || 'not a request'}`, true)
      return
    }
    try {
      log.info(
        `admin request from ${from}: ${req.op}${req.deadlineS !== undefined ? ` (deadline ${req.deadlineS} s)` : ''}`
      )
      const result = (await this.components.handle(req, from)) as Record<string, unknown>
      await answer({ v: 1, id, ok: true, result })
    } catch (err) {
      if (err instanceof AdminCallError) {
        await refuse(err.code as AdminWireCode, err.message)
        return
      }
      // The details go to this host's log, not to the peer.
      log.error(`admin request ${req.op} from ${from} failed: ${(err as Error).message}`)
      await refuse('INTERNAL', `internal error while carrying out ${req.op}; the allocator's log has the details`)
    }
  }
}
