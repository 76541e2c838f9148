// Runs a daemon until SIGINT/SIGTERM: the first signal stops it gracefully (leave
// announcement, drain), a second one forces the exit. Handlers are installed before
// the daemon starts, so that a signal during start-up also stops it cleanly. SIGHUP
// reloads the configuration: a valid one is applied, an invalid one refused in one line
// and the running one kept.
import type { Logger } from '../util/log.js'
import type { Config } from '../config/schema.js'
import { leanStartEnd } from './lean-start.js'

export interface Stoppable {
  stop: () => Promise<void>
  reload?: (config: Config) => void
}

/** Keys whose new value takes effect only at the next start (sockets, identity, the runtime). */
const RESTART_ONLY = [
  'Listen',
  'Announce',
  'Psk',
  'PskFile',
  'KeyFile',
  'Bootstraps',
  'Admin',
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
  process.on('SIGHUP', () => {
    if (daemon?.reload === undefined || opts.reload === undefined) return
    let next: Config
    try {
      next = opts.reload().config
    } catch (err) {
      log.error(`SIGHUP: reload refused, the running configuration stays: ${(err as Error).message}`)
      return
    }
    daemon.reload(next)
    const later =
      current === undefined ? [] : RESTART_ONLY.filter(k => valueAt(current as Config, k) !== valueAt(next, k))
    current = next
    log.info(
      `SIGHUP: configuration reloaded${later.length > 0 ? `; takes effect at the next start: ${later.join(', ')}` : ''}`
    )
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
  if (stopping !== undefined) shutdown(stopping, daemon)
  return await new Promise<never>(() => {})
}
