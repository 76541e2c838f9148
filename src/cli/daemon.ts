// Runs a daemon until SIGINT/SIGTERM: the first signal stops it gracefully (leave
// announcement, drain), a second one forces the exit. Handlers are installed before
// the daemon starts, so that a signal during start-up also stops it cleanly. SIGHUP
// reloads the configuration: a valid one is applied, an invalid one refused in one line
// and the running one kept.
import type { Logger } from '../util/log.js'
import type { Config } from '../config/schema.js'
import { leanStartEnd } from './lean-start.js'
import type { AdminServer } from '../cluster/admin/server.js'
import { AdminError } from '../cluster/admin/errors.js'

export interface Stoppable {
  stop: () => Promise<void>
  reload?: (config: Config) => void
  /** Its agent's admin API, where `physarum reload` asks for a reload (POST /v1/reload). */
  agent?: { admin: AdminServer }
}

/** What a reload did: applied (with the keys that wait for a restart) or refused, in one line. */
export interface ReloadResult {
  ok: boolean
  message: string
  restartNeeded?: string[]
}

/** Keys whose new value takes effect only at the next start (sockets, identity, the runtime). */
const RESTART_ONLY = [
  'Listen',
  'Announce',
  'Psk',
  'PskFile',
  'KeyFile',
  'Bootstraps',
  'Admin.Listen',
  'Membership',
  'Log.Format',
  'Allocator.Runtime',
  'Proxy.Port',
  'Proxy.Bind',
  'Proxy.ColdStartTimeoutS'
] as const

function valueAt(config: Config, path: string): string {
  let v: unknown = config
  for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k]
  return JSON.stringify(v) ?? 'undefined'
}

export async function runDaemon(
  start: () => Promise<Stoppable>,
  log: Logger,
  opts: { config?: Config; reload?: () => { config: Config } } = {}
): Promise<never> {
  let daemon: Stoppable | undefined
  let stopping: NodeJS.Signals | undefined
  let current = opts.config
  // SIGHUP and `physarum reload` (POST /v1/reload) do the same, and log the same line.
  const reloadNow = (trigger: string): ReloadResult => {
    if (daemon?.reload === undefined || opts.reload === undefined)
      return { ok: false, message: `${trigger}: this daemon cannot reload` }
    let next: Config
    try {
      next = opts.reload().config
    } catch (err) {
      const message = `${trigger}: reload refused, the running configuration stays: ${(err as Error).message}`
      log.error(message)
      return { ok: false, message }
    }
    daemon.reload(next)
    const later =
      current === undefined ? [] : RESTART_ONLY.filter(k => valueAt(current as Config, k) !== valueAt(next, k))
    current = next
    const message = `${trigger}: configuration reloaded${later.length > 0 ? `; takes effect at the next start: ${later.join(', ')}` : ''}`
    log.info(message)
    return { ok: true, message, restartNeeded: later }
  }
  process.on('SIGHUP', () => {
    reloadNow('SIGHUP')
  })
  const shutdown = (sig: NodeJS.Signals, d: Stoppable): void => {
    log.info(`${sig}: shutting down`)
    d.stop().then(
      () => {
        log.info('stopped')
        process.exit(0)
      },
      (err: Error) => {
        log.error(`shutdown failed: ${err.message}`)
        process.exit(1)
      }
    )
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      log.warn(`${sig} again: exiting at once`)
      process.exit(1)
    }
    stopping = sig
    if (daemon !== undefined) shutdown(sig, daemon)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    daemon = await start()
  } finally {
    leanStartEnd()
  }
  daemon.agent?.admin.mutation({
    method: 'POST',
    path: '/v1/reload',
    schema: { type: 'object', additionalProperties: false },
    handle: () => {
      const r = reloadNow('reload')
      if (!r.ok) throw new AdminError('REFUSED', r.message)
      return r
    }
  })
  if (stopping !== undefined) shutdown(stopping, daemon)
  return await new Promise<never>(() => {})
}
