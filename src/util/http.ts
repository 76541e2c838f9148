// Small HTTP server helpers shared by the admin API and the proxy entrypoint.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { EventEmitter } from 'node:events'

/** "host:port" or "[v6]:port" → parts; undefined when it is not that. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(s)
  if (m === null || Number(m[2]) > 65535) return undefined
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/** "host:port" for a URL or a log line, an IPv6 host in brackets (the inverse of parseHostPort). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Listens and resolves with the bound "host:port" (IPv6 in brackets), or rejects with the listen error. */
/**
 * An address this process cannot listen on, in one line that names it, the cause and the way
 * out, e.g. "the proxy cannot listen on 127.0.0.1:1234: EADDRINUSE (choose another with --port)".
 * The CLI prints it as it is, for HTTP servers and libp2p's Listen addresses alike.
 */
export class ListenError extends Error {
  override name = 'ListenError'
  /** The system's code (EADDRINUSE, EACCES, …), when there is one. */
  constructor(
    message: string,
    readonly code?: string
  ) {
    super(message)
  }
}

/**
 * Listens; resolves with the bound HOST:PORT, or throws a ListenError naming `what` (e.g. "admin API") and a `hint`.
 */
export async function listenOn(
  server: Server,
  host: string,
  port: number,
  opts: { what?: string; hint?: string } = {}
): Promise<string> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    const who = opts.what !== undefined ? `${opts.what} ` : ''
    throw new ListenError(
      `${who}cannot listen on ${hostPort(host, port)}: ${cause}${opts.hint !== undefined ? ` (${opts.hint})` : ''}`,
      (err as NodeJS.ErrnoException).code
    )
  }
  const a = server.address() as AddressInfo
  return hostPort(a.address, a.port)
}

/**
 * What undici needs of an abort signal ('abort' listeners, `aborted`, `reason`), one per
 * forwarded request (both sides): an AbortController is an EventTarget and was a hop's
 * most allocated object and a visible share of its CPU.
 */
export class RequestAbort extends EventEmitter {
  aborted = false
  reason?: Error
  abort(reason: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.emit('abort')
  }
}

const pending = new WeakMap<Duplex, Set<() => void>>()

/**
 * Calls `fn` once when a response is over, however: its own 'close', or the close of its
 * connection. A pipelined request whose response still waits behind an earlier one gets
 * no 'close' of its own when the client drops the connection (and destroying it emits
 * nothing either): without this, what it holds (an upstream request, a pool connection,
 * an in-flight count) was never released. Such a response is destroyed and made to emit
 * 'close', so that whatever else waits on it (`stream.finished`, undici's `stream()`
 * whose promise settles only then) hears that it is over too.
 */
export function onResponseOver(req: IncomingMessage, res: ServerResponse, fn: () => void): void {
  let called = false
  const socket = req.socket as Duplex | null
  let set: Set<() => void> | undefined
  const once = (): void => {
    if (called) return
    called = true
    set?.delete(connectionGone)
    fn()
  }
  const connectionGone = (): void => {
    if (res.socket === null && !res.writableFinished) {
      res.destroy()
      res.emit('close')
    }
    once()
  }
  res.once('close', once)
  if (socket === null || socket.destroyed) {
    queueMicrotask(connectionGone)
    return
  }
  set = pending.get(socket)
  if (set === undefined) {
    const s = new Set<() => void>()
    pending.set(socket, s)
    socket.once('close', () => {
      pending.delete(socket)
      for (const f of [...s]) f()
    })
    set = s
  }
  set.add(connectionGone)
}
