// HTTP/1.1 exchanges the pooled undici path cannot carry, relayed with node:http on a
// connection of their own: a request that declares trailers (`Trailer:`), whose trailers
// undici cannot send, and `Expect: 100-continue`, which must reach the app so that it can
// refuse an upload (417, 413, 401…) before the client sends the body. Both sides of the hop
// use it; everything else stays on the pooled path. Response trailers need no connection of
// their own: see `trailerSink`.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { Writable, type Duplex } from 'node:stream'
import { endToEnd } from './headers.js'

/** Whether a request needs this path: it declares trailers, or waits for a 100 Continue. */
export function needsExact(headers: IncomingMessage['headers']): boolean {
  return headers.trailer !== undefined || (headers.expect ?? '').toLowerCase() === '100-continue'
}

/** Whether a response declares trailers (`Trailer:`), so that they are relayed after its body. */
export function declaresTrailers(headers: Record<string, string | string[] | undefined>): boolean {
  return headers.trailer !== undefined && headers['content-length'] === undefined
}

/** A header's value as one string (a list joined as RFC 9110 §5.3 allows). */
export function listValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? v.join(', ') : (v ?? '')
}

/**
 * A writable for undici's stream() in front of `res` that writes the body on but does not
 * end `res`: undici hands the trailers over only with its promise, after it ended the
 * writable; the caller then ends `res` with them (`endWithTrailers`).
 */
export function trailerSink(res: ServerResponse): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (res.write(chunk)) cb()
      else res.once('drain', cb)
    },
    final(cb) {
      cb()
    },
    destroy(err, cb) {
      if (err !== null) res.destroy(err)
      cb(err)
    }
  })
}

/** Ends `res` with the trailers an upstream sent (only those that are no framing fields). */
export function endWithTrailers(res: ServerResponse, trailers: Record<string, string | string[] | undefined>): void {
  const t = endToEnd(trailers)
  if (Object.keys(t).length > 0) res.addTrailers(t as Record<string, string>)
  res.end()
}

/** The head of an upstream answer as it goes on: end-to-end headers, `Trailer` kept, plus `extra`. */
function relayedHead(
  upstream: IncomingMessage['headers'],
  extra: Record<string, string>
): Record<string, string | string[]> {
  const h = Object.assign(endToEnd(upstream), extra)
  if (upstream.trailer !== undefined) h.trailer = upstream.trailer
  return h
}

export interface ExactTarget {
  /** The connection to send it on (a forwarding stream, or undefined: TCP to host:port). */
  socket?: Duplex
  host: string
  port: number
}

/**
 * Sends `req` on to the target as it came (its Expect and Trailer, its body with its
 * trailers) and relays the answer to `res` (a 100 Continue included, then the final answer
 * with its trailers). Resolves with the status once the answer is over; rejects, with
 * nothing written to `res`, when the target failed before its answer began.
 */
export async function relayExact(
  req: IncomingMessage,
  res: ServerResponse,
  to: ExactTarget,
  out: {
    path: string
    headers: Record<string, string | string[]>
    extra: (upstream: IncomingMessage['headers']) => Record<string, string>
    signal: { aborted: boolean; once: (e: 'abort', f: () => void) => unknown }
  }
): Promise<number> {
  const headers = { ...out.headers }
  const expect = (req.headers.expect ?? '').toLowerCase() === '100-continue'
  if (expect) headers.expect = '100-continue'
  if (req.headers.trailer !== undefined) headers.trailer = req.headers.trailer
  if (req.headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = 'chunked'
  return await new Promise<number>((resolve, reject) => {
    const socket = to.socket
    const outgoing = httpRequest({
      host: to.host,
      port: to.port,
      method: req.method,
      path: out.path,
      headers,
      // One request per connection (a given socket, or a new agent's): this path is for the rare exchange the pool
      // cannot carry.
      ...(socket !== undefined ? { createConnection: () => socket as never } : { agent: false })
    })
    let answered = false
    let over = false
    const sendBody = (): void => {
      req.pipe(outgoing, { end: false })
      req.once('end', () => {
        const t = endToEnd(req.trailers)
        if (Object.keys(t).length > 0) outgoing.addTrailers(t as Record<string, string>)
        outgoing.end()
      })
    }
    out.signal.once('abort', () => {
      outgoing.destroy(new Error('client disconnected'))
    })
    outgoing.once('continue', () => {
      // The app wants the body: the client is told so, and its body goes on as it comes.
      res.writeContinue()
      sendBody()
    })
    outgoing.once('response', (upstream: IncomingMessage) => {
      answered = true
      res.writeHead(upstream.statusCode ?? 502, relayedHead(upstream.headers, out.extra(upstream.headers)))
      upstream.pipe(res, { end: false })
      const done = (): void => {
        over = true
        // A body the app refused before it was sent is never sent: this connection is done with.
        if (!outgoing.writableEnded) outgoing.destroy()
        resolve(upstream.statusCode ?? 502)
      }
      upstream.once('end', () => {
        endWithTrailers(res, upstream.trailers)
        done()
      })
      upstream.once('error', err => {
        res.destroy(err)
        done()
      })
    })
    outgoing.on('error', err => {
      if (over) return
      if (answered) res.destroy(err)
      else reject(err)
    })
    if (!expect) sendBody()
    else outgoing.flushHeaders()
  })
}
