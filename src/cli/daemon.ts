// Runs a daemon until SIGINT/SIGTERM: the first signal stops it gracefully
// (leave announcement, drain), a second one forces the exit.
import type { Logger } from '../log.js'

export interface Stoppable { stop: () => Promise<void> }

export async function runUntilSignal (daemon: Stoppable, log: Logger): Promise<never> {
  return await new Promise<never>(() => {
    let stopping = false
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) {
        log.warn(`${sig} again: exiting at once`)
        process.exit(1)
      }
      stopping = true
      log.info(`${sig}: shutting down`)
      daemon.stop().then(() => {
        log.info('stopped')
        process.exit(0)
      }, (err: Error) => {
        log.error(`shutdown failed: ${err.message}`)
        process.exit(1)
      })
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
