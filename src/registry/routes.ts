// The registration API on an agent's admin API: GET /v1/registrations (open), and the
// token-checked POST /v1/registrations (register), PUT /v1/registrations/refresh (a TTL
// pass) and DELETE /v1/registrations (deregister).
import type { AdminServer } from '../cluster/admin/server.js'
import { AdminError } from '../cluster/admin/errors.js'
import type { AppSpec } from '../catalog/catalog.js'
import { parseHostPort } from '../util/http.js'
import { registerSchema, selectSchema, type RegisterRequest, type SelectRequest } from './protocol.js'
import { defaultCheck, RegistryFullError, type Registry } from './registry.js'

function address(s: string): { host: string; port: number } {
  const a = parseHostPort(s)
  if (a === undefined || a.port < 1)
    throw new AdminError('BAD_REQUEST', `address ${JSON.stringify(s)} is not HOST:PORT`)
  return a
}

const noneMessage = (app: string, addr?: string): string =>
  `no registration of ${app}${addr !== undefined ? ` at ${addr}` : ''} on this agent` +
  ' (never registered, deregistered, or its TTL lapsed)'

export function registrationRoutes(
  admin: AdminServer,
  registry: Registry,
  catalog: { get: (app: string) => AppSpec | undefined }
): void {
  admin.route('/v1/registrations', () => registry.list())
  admin.mutation<RegisterRequest>({
    method: 'POST',
    path: '/v1/registrations',
    schema: registerSchema,
    handle: async body => {
      const { host, port } = address(body.address)
      const base = defaultCheck(catalog.get(body.app))
      const check = {
        ...base,
        ...(body.check?.tcp === true ? { tcp: true } : {}),
        ...(body.check?.http !== undefined ? { tcp: false, path: body.check.http } : {}),
        ...(body.check?.intervalS !== undefined ? { intervalMs: Math.round(body.check.intervalS * 1000) } : {})
      }
      try {
        const e = await registry.register({
          app: body.app,
          host,
          port,
          check,
          protocol: body.protocol ?? catalog.get(body.app)?.protocol ?? 'http1',
          source: 'api',
          ...(body.ttlS !== undefined ? { ttlMs: Math.round(body.ttlS * 1000) } : {})
        })
        return registry.list().find(v => v.id === e.id)
      } catch (err) {
        if (err instanceof RegistryFullError) throw new AdminError('CONFLICT', err.message)
        throw err
      }
    }
  })
  admin.mutation<SelectRequest>({
    method: 'PUT',
    path: '/v1/registrations/refresh',
    schema: selectSchema,
    handle: body => {
      const hit = registry.refresh(body.app, body.address === undefined ? undefined : address(body.address))
      if (hit.length === 0) throw new AdminError('NOT_FOUND', noneMessage(body.app, body.address))
      const ids = new Set(hit.map(e => e.id))
      return { refreshed: registry.list().filter(v => ids.has(v.id)) }
    }
  })
  admin.mutation<SelectRequest>({
    method: 'DELETE',
    path: '/v1/registrations',
    schema: selectSchema,
    handle: body => {
      const views = registry.list()
      const hit = registry.deregister(body.app, body.address === undefined ? undefined : address(body.address))
      if (hit.length === 0) throw new AdminError('NOT_FOUND', noneMessage(body.app, body.address))
      const ids = new Set(hit.map(e => e.id))
      return { deregistered: views.filter(v => ids.has(v.id)) }
    }
  })
}
