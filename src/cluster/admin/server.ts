// The local admin API of a daemon (127.0.0.1 by default): JSON under /v1/ and
// Prometheus text on /metrics. Concerns register their own GET routes, and POST routes for what changes state.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { listenOn, parseHostPort, type ListenError } from '../../util/http.js'
import type { Registry } from 'prom-client'
import type { Startable } from '@libp2p/interface'

/**
 * Idle keep-alive connections of the admin API close after this long (ms): its clients are CLIs and scrapers, not hot
 * paths.
 */
const KEEPALIVE_MS = 5000

/** A route's answer (or a promise of it), sent as JSON. */
export type Route = (req: IncomingMessage, url: URL) => unknown

/** A state-changing route: the request's JSON body (undefined when empty) → its answer, sent as JSON. */
export type PostRoute = (body: unknown, url: URL) => unknown

/** The largest POST body read (bytes): admin calls carry a few fields. */
const MAX_BODY_BYTES = 64 * 1024

/** A refusal of an admin call with its HTTP status (a bad body 400, a conflict 409, …). */
export class AdminError extends Error {
  override name = 'AdminError'
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length
    if (size > MAX_BODY_BYTES) throw new AdminError(413, `request body over ${MAX_BODY_BYTES} bytes`)
    chunks.push(c)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new AdminError(400, 'the request body is not JSON')
  }
}

export class AdminServer implements Startable {
  private readonly routes = new Map<string, Route>()
  private readonly postRoutes = new Map<string, PostRoute>()
  private server?: Server
  /** HOST:PORT it listens on, once started (none: it answers only through serve(), e.g. a proxy's /_physarum/). */
  address?: string

  constructor(
    private readonly components: { registry: Registry },
    private readonly init: {
      listen?: string
      hint?: string
      /**
       * The address is a role default, not the user's: when another daemon on the host has its
       * port, take a free one (local-agents.ts records it for `physarum members`).
       */
      anyPortIfTaken?: boolean
    } = {}
  ) {}

  route(path: string, handler: Route): void {
    this.routes.set(path, handler)
  }

  /** A state-changing call (POST with a JSON body). */
  post(path: string, handler: PostRoute): void {
    this.postRoutes.set(path, handler)
  }

  async start(): Promise<void> {
    const hostPort = this.init.listen
    if (hostPort === undefined) return
    const target = parseHostPort(hostPort)
    if (target === undefined) throw new Error(`${JSON.stringify(hostPort)} is not HOST:PORT`)
    const server = createServer((req, res) => {
      void this.serve(req, res)
    })
    server.keepAliveTimeout = KEEPALIVE_MS
    const opts = { what: 'admin API', hint: this.init.hint }
    try {
      this.address = await listenOn(server, target.host, target.port, opts)
    } catch (err) {
      if (this.init.anyPortIfTaken !== true || (err as ListenError).code !== 'EADDRINUSE') throw err
      this.address = await listenOn(server, target.host, 0, opts)
    }
    this.server = server
  }

  /** Answers one request; `pathname` overrides the request's path (the proxy maps /_physarum/… here). */
  async serve(req: IncomingMessage, res: ServerResponse, pathname?: string): Promise<void> {
    const send = (status: number, body: unknown, type = 'application/json'): void => {
      const text = type === 'application/json' ? JSON.stringify(body, null, 2) + '\n' : String(body)
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://admin')
    } catch {
      send(400, { error: 'bad request target' })
      return
    }
    if (pathname !== undefined) url.pathname = pathname
    if (req.method === 'POST' && this.postRoutes.has(url.pathname)) {
      const post = this.postRoutes.get(url.pathname) as PostRoute
      // TOKEN: the admin token check of state-changing calls belongs here (issue 16, item 8), before the body is read.
      try {
        send(200, await post(await readBody(req), url))
      } catch (err) {
        send(err instanceof AdminError ? err.status : 500, { error: (err as Error).message })
      }
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, { error: `only GET is supported on ${url.pathname}` })
      return
    }
    try {
      if (url.pathname === '/metrics') {
        send(200, await this.components.registry.metrics(), this.components.registry.contentType)
        return
      }
      const route = this.routes.get(url.pathname)
      if (route === undefined) {
        send(404, { error: `no such endpoint: ${url.pathname}`, endpoints: ['/metrics', ...this.routes.keys()] })
        return
      }
      send(200, await route(req, url))
    } catch (err) {
      send(500, { error: (err as Error).message })
    }
  }

  async stop(): Promise<void> {
    const s = this.server
    if (s === undefined) return
    this.server = undefined
    s.closeIdleConnections()
    await new Promise<void>(resolve =>
      s.close(() => {
        resolve()
      })
    )
  }
}
