// A proxy's server mode from its arguments: which app it announces and where the user-run
// instance is (--address, else 127.0.0.1 on the app's catalog Port), or a one-line error.
import { APP_NAME_PATTERN, type Config } from '../config/schema.js'
import { parseHostPort } from '../util/http.js'
import { UsageError } from './base.js'

export interface ServerMode {
  app?: string
  target?: { host: string; port: number }
}

export function serverMode(cfg: Config, app: string | undefined, address: string | undefined): ServerMode {
  if (address !== undefined && app === undefined) throw new UsageError('--address needs --app NAME')
  if (app === undefined) return {}
  if (!new RegExp(APP_NAME_PATTERN).test(app))
    throw new UsageError(
      `--app ${JSON.stringify(app)} is not a valid app name (lowercase letters, digits, '.', '_', '-')`
    )
  if (address !== undefined) {
    const target = parseHostPort(address)
    if (target === undefined || target.port < 1)
      throw new UsageError(`--address ${JSON.stringify(address)} is not HOST:PORT`)
    return { app, target }
  }
  const catalogPort = cfg.Apps[app]?.Port
  if (catalogPort === undefined)
    throw new UsageError(
      `--app ${app} needs --address HOST:PORT: the app has no Port in the catalog (Apps.${app}.Port)`
    )
  return { app, target: { host: '127.0.0.1', port: catalogPort } }
}
