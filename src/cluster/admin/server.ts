// The local admin API of a daemon (127.0.0.1 by default): JSON under /v1/ and
// Prometheus text on /metrics. Concerns register their own routes: reads (GET) are open,
// state-changing calls (POST/PUT/DELETE) are token-checked here, in one place, and their
// JSON bodies bounded in size and validated against the route's schema before it runs.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { ValidateFunction } from 'ajv'
import { listenOn, parseHostPort, type ListenError } from '../../util/http.js'
import type { Registry } from 'prom-client'
import type { Startable } from '@libp2p/interface'
import { ajv } from '../../util/ajv.js'
import { BODY_TIMEOUT_MS, KEEPALIVE_MS, MAX_BODY_BYTES } from './constants.js'
import { ADMIN_STATUS, AdminError, adminErrorBody, type AdminErrorCode } from './errors.js'
import { authorized } from './token.js'

/** A route's answer (or a promise of it), sent as JSON. */
export type Route = (req: IncomingMessage, url: URL) => unknown

export type MutationMethod = 'POST' | 'PUT' | 'DELETE'

/** A state-changing route: its body (validated, `{}` when empty) → the answer, sent as JSON with 200. */
export interface Mutation<B = unknown> {
  method: MutationMethod
  path: string
  /** JSON Schema of the body (compiled once on the process's ajv); none: any JSON value. */
  schema?: object
  /** Largest body (bytes); MAX_BODY_BYTES by default. */
  maxBytes?: number
  handle: (body: B, req: IncomingMessage) => unknown
}

interface CompiledMutation extends Mutation {
  validate?: ValidateFunction
}

/** A path ending in /* matches every path under it (the handler reads the rest from the URL). */
const matches = (pattern: string, path: string): boolean =>
  pattern.endsWith('/*') ? path.startsWith(pattern.slice(0, -1)) && path.length > pattern.length - 1 : pattern === path

/** The first error of a failed validation in one line, e.g. "/check/interval must be >= 1". */
function schemaReason(v: ValidateFunction): string {
  const e = v.errors?.[0]
  if (e === undefined) return 'invalid body'
  const where = e.instancePath === '' ? 'body' : e.instancePath
  const extra = (e.params as { additionalProperty?: string }).additionalProperty
  return `${where} ${e.message ?? 'is invalid'}${extra !== undefined ? `: ${JSON.stringify(extra)}` : ''}`
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) throw new AdminError('PAYLOAD_TOO_LARGE', `body over ${maxBytes} bytes`)
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const timer = setTimeout(() => {
      fail(new AdminError('BAD_REQUEST', `body not received within ${BODY_TIMEOUT_MS / 1000} s`))
    }, BODY_TIMEOUT_MS)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      req.removeAllListeners('data')
      req.resume()
      reject(err)
    }
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBytes) fail(new AdminError('PAYLOAD_TOO_LARGE', `body over ${maxBytes} bytes`))
      else chunks.push(c)
    })
    req.once('end', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    req.once('error', fail)
  })
}

export class AdminServer implements Startable {
  private readonly routes = new Map<string, Route>()
  private readonly mutations: CompiledMutation[] = []
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
      /** What a state-changing call must carry (Bearer); none: every such call is refused. */
      token?: string
    } = {}
  ) {}

  /** A read: GET (and HEAD) of `path`, open to anyone who reaches the API. */
  route(path: string, handler: Route): void {
    this.routes.set(path, handler)
  }

  /** A state-changing call: only with the token, and only with a body its schema accepts. */
  mutation<B>(m: Mutation<B>): void {
    const validate = m.schema === undefined ? undefined : ajv.compile(m.schema)
    this.mutations.push({ ...(m as Mutation), validate })
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

  private readRoute(path: string): Route | undefined {
    const exact = this.routes.get(path)
    if (exact !== undefined) return exact
    for (const [pattern, r] of this.routes) if (matches(pattern, path)) return r
    return undefined
  }

  /** Answers one request; `pathname` overrides the request's path (the proxy maps /_physarum/… here). */
  async serve(req: IncomingMessage, res: ServerResponse, pathname?: string): Promise<void> {
    const send = (status: number, body: unknown, type = 'application/json'): void => {
      if (res.headersSent) return
      const text = type === 'application/json' ? JSON.stringify(body, null, 2) + '\n' : String(body)
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }
    const fail = (code: AdminErrorCode, message: string, extra: Record<string, unknown> = {}): void => {
      send(ADMIN_STATUS[code], { ...adminErrorBody(code, message), ...extra })
    }
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://admin')
    } catch {
      fail('BAD_REQUEST', 'bad request target')
      return
    }
    if (pathname !== undefined) url.pathname = pathname
    const method = req.method ?? 'GET'
    try {
      if (method === 'GET' || method === 'HEAD') {
        if (url.pathname === '/metrics') {
          send(200, await this.components.registry.metrics(), this.components.registry.contentType)
          return
        }
        const route = this.readRoute(url.pathname)
        if (route !== undefined) {
          send(200, await route(req, url))
          return
        }
      } else {
        const m = this.mutations.find(x => x.method === method && matches(x.path, url.pathname))
        if (m !== undefined) {
          await this.mutate(m, req, res, send, fail)
          return
        }
      }
      const allowed = [
        ...(this.readRoute(url.pathname) !== undefined ? ['GET'] : []),
        ...this.mutations.filter(x => matches(x.path, url.pathname)).map(x => x.method)
      ]
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '))
        fail('METHOD_NOT_ALLOWED', `${url.pathname} takes ${allowed.join(', ')}, not ${method}`)
        return
      }
      const endpoints = [
        'GET /metrics',
        ...[...this.routes.keys()].map(p => `GET ${p}`),
        ...this.mutations.map(x => `${x.method} ${x.path}`)
      ]
      fail('NOT_FOUND', `no such endpoint: ${method} ${url.pathname}`, { endpoints })
    } catch (err) {
      if (err instanceof AdminError) fail(err.code, err.message)
      else fail('INTERNAL', (err as Error).message)
    }
  }

  private async mutate(
    m: CompiledMutation,
    req: IncomingMessage,
    res: ServerResponse,
    send: (status: number, body: unknown) => void,
    fail: (code: AdminErrorCode, message: string) => void
  ): Promise<void> {
    // Before the body is read: a call without the token costs nothing and changes nothing.
    const token = this.init.token
    if (token === undefined || !authorized(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer realm="physarum"')
      // The body is not read: the connection goes with the answer.
      res.setHeader('connection', 'close')
      fail(
        'UNAUTHORIZED',
        token === undefined
          ? 'this agent takes no state-changing calls (it has no admin token)'
          : req.headers.authorization === undefined
            ? 'a state-changing call needs the admin token (Authorization: Bearer <token>; the CLI reads its file)'
            : 'wrong admin token'
      )
      req.resume()
      return
    }
    const raw = await readBody(req, m.maxBytes ?? MAX_BODY_BYTES)
    let body: unknown = {}
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'))
      } catch (err) {
        throw new AdminError('BAD_REQUEST', `body is not JSON: ${(err as Error).message}`)
      }
    }
    if (m.validate !== undefined && !m.validate(body)) throw new AdminError('BAD_REQUEST', schemaReason(m.validate))
    send(200, (await m.handle(body, req)) ?? { ok: true })
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
