// Wire format of a forwarding stream whose header frame says `proto: 'calls'`: HTTP/2's
// semantics (calls multiplexed by id, headers, bodies both ways, trailers, resets, per-call
// flow control) in a framing of physarum's own, so that a call through the hop crosses no
// HTTP/2 codec between the proxy and the instance host. Each frame is a 10-byte head
// (type u8, flags u8, call id u32, payload length u32, big-endian) and its payload. Header
// and trailer payloads are JSON objects (validated: names to a string, a number or a list of
// strings, at most MAX_HEADER_PAIRS of them, in at most MAX_HEADERS_PAYLOAD bytes); DATA is
// bytes, at most MAX_DATA_PAYLOAD per frame; RST and WINDOW carry a u32.
import { ajv } from '../util/ajv.js'

export const FRAME_HEAD = 10

export const FrameType = {
  /** The host's first frame (call id 0): it speaks this framing. */
  HELLO: 0,
  /** A call's request head (a new id, from the proxy) or its answer's head (from the host); END_STREAM may end it. */
  HEADERS: 1,
  /** Body bytes; END_STREAM ends the sender's side. */
  DATA: 2,
  /** The answer's trailers: they end the host's side. */
  TRAILERS: 3,
  /** The call is reset, with an HTTP/2 error code (u32). */
  RST: 4,
  /** The receiver took this many more bytes of a call's body (u32): the sender may send them. */
  WINDOW: 5,
  /** A keep-alive; answered with the ACK flag. */
  PING: 6,
  /** The host takes no new calls on this stream; those in flight finish. */
  GOAWAY: 7
} as const

export const FLAG_END_STREAM = 1
export const FLAG_ACK = 2

/** The most bytes of one DATA frame (a larger write is split). */
export const MAX_DATA_PAYLOAD = 64 * 1024
/** The most bytes of a HEADERS or TRAILERS frame's JSON: the entrypoint's own header list limit. */
export const MAX_HEADERS_PAYLOAD = 64 * 1024
/** The most header fields in one HEADERS or TRAILERS frame (the entrypoint's maxHeaderListPairs). */
export const MAX_HEADER_PAIRS = 256

export interface Frame {
  type: number
  flags: number
  id: number
  payload: Buffer
}

/** A header list as the frames carry it (pseudo-headers included, `:status` may be a number). */
export type FrameHeaders = Record<string, string | number | string[]>

const headersSchema = {
  type: 'object',
  maxProperties: MAX_HEADER_PAIRS,
  propertyNames: { minLength: 1, maxLength: 1024 },
  additionalProperties: {
    anyOf: [
      { type: 'string' },
      { type: 'number' },
      { type: 'array', maxItems: MAX_HEADER_PAIRS, items: { type: 'string' } }
    ]
  }
} as const
const validateHeaders = ajv.compile<FrameHeaders>(headersSchema)

/** One frame's bytes. */
export function encodeFrame(type: number, flags: number, id: number, payload?: Uint8Array): Buffer {
  const len = payload?.length ?? 0
  const b = Buffer.allocUnsafe(FRAME_HEAD + len)
  b[0] = type
  b[1] = flags
  b.writeUInt32BE(id, 2)
  b.writeUInt32BE(len, 6)
  if (payload !== undefined && len > 0) b.set(payload, FRAME_HEAD)
  return b
}

/** A HEADERS or TRAILERS frame; undefined values are left out. */
export function encodeHeaders(
  type: number,
  flags: number,
  id: number,
  headers: Record<string, string | number | string[] | undefined>
): Buffer {
  return encodeFrame(type, flags, id, Buffer.from(JSON.stringify(headers)))
}

/** A frame carrying one u32 (RST's code, WINDOW's increment). */
export function encodeU32(type: number, id: number, value: number): Buffer {
  const p = Buffer.allocUnsafe(4)
  p.writeUInt32BE(value >>> 0, 0)
  return encodeFrame(type, 0, id, p)
}

/** The header list of a HEADERS or TRAILERS payload, or why it is none. */
export function decodeHeaders(payload: Buffer): { headers: FrameHeaders } | { error: string } {
  let v: unknown
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (err) {
    return { error: `header list is not UTF-8 JSON: ${(err as Error).message}` }
  }
  if (validateHeaders(v)) return { headers: v }
  return { error: `invalid header list: ${ajv.errorsText(validateHeaders.errors)}` }
}

/** The u32 of an RST or WINDOW payload, or why it is none. */
export function decodeU32(payload: Buffer): number | { error: string } {
  if (payload.length !== 4) return { error: `a ${payload.length}-byte payload where 4 bytes belong` }
  return payload.readUInt32BE(0)
}

/**
 * Splits the bytes of a stream into frames as they come (a frame may span chunks, a chunk
 * hold many). A frame longer than its type allows, or of an unknown type, is an error: the
 * stream is then done with (the caller resets it).
 */
export class FrameReader {
  private rest: Buffer | undefined

  /** The whole frames `chunk` completes, or the error of the first bad one. */
  push(chunk: Uint8Array): Frame[] | { error: string } {
    let buf: Buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.rest !== undefined) {
      buf = Buffer.concat([this.rest, buf])
      this.rest = undefined
    }
    const frames: Frame[] = []
    let at = 0
    while (buf.length - at >= FRAME_HEAD) {
      const type = buf[at]
      const len = buf.readUInt32BE(at + 6)
      const max = maxPayload(type)
      if (max === undefined) return { error: `unknown frame type ${type}` }
      if (len > max) return { error: `a frame of type ${type} with ${len} bytes (at most ${max})` }
      if (buf.length - at < FRAME_HEAD + len) break
      frames.push({
        type,
        flags: buf[at + 1],
        id: buf.readUInt32BE(at + 2),
        payload: buf.subarray(at + FRAME_HEAD, at + FRAME_HEAD + len)
      })
      at += FRAME_HEAD + len
    }
    // What is left is less than one frame, at most MAX_DATA_PAYLOAD + a head: copied, so that the chunk is not kept.
    if (at < buf.length) this.rest = Buffer.from(buf.subarray(at))
    return frames
  }
}

function maxPayload(type: number): number | undefined {
  switch (type) {
    case FrameType.HEADERS:
    case FrameType.TRAILERS:
      return MAX_HEADERS_PAYLOAD
    case FrameType.DATA:
      return MAX_DATA_PAYLOAD
    case FrameType.RST:
    case FrameType.WINDOW:
      return 4
    case FrameType.HELLO:
    case FrameType.GOAWAY:
      return 0
    case FrameType.PING:
      return 8
    default:
      return undefined
  }
}
