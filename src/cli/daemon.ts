// Runs a daemon until SIGINT/SIGTERM: the first signal stops it gracefully (leave
// announcement, drain), a second one forces the exit. Handlers are installed before
// the daemon starts, so that a signal during start-up also stops it cleanly.
import type { Logger } from '../util/log.js'
import { leanStartEnd } from './lean-start.js'

export interface Stoppable {
  stop: () => Promise<void>
}

export async function runDaemon(start: () => Promise<Stoppable>, log: Logger): Promise<never> {
  let daemon: Stoppable | undefined
  let stopping: NodeJS.Signals | undefined
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
