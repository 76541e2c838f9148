// The base of every command: one-line errors with exit code 2 for bad input
// (flags, config, unreachable agent), never a stack trace.
import { Command, Flags } from '@oclif/core'
import { ConfigError } from '../config/errors.js'

/** An error the user caused or can fix: printed as one line, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError'
  constructor(
    message: string,
    readonly exitCode = 2
  ) {
    super(message)
  }
}

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    version: Flags.version({ description: 'show the physarum version' }),
    help: Flags.help({ char: 'h', description: 'show help' })
  }

  override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number }; code?: string }): Promise<void> {
    if (err.code === 'EEXIT' || err.oclif?.exit === 0) throw err
    const firstLine = (s: string): string =>
      s
        .split('\n')
        .map(l => l.trim())
        .find(l => l !== '') ?? s
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`physarum: ${err.message}\n`)
      this.exit(err instanceof UsageError ? err.exitCode : 2)
    }
    if (err.oclif?.exit !== undefined) {
      // Parse errors from oclif (unknown flag, bad value): one line plus where to look.
      process.stderr.write(`physarum: ${firstLine(err.message)} (see --help)\n`)
      this.exit(2)
    }
    process.stderr.write(`physarum: ${firstLine(err.message)}\n`)
    if (process.env.PHYSARUM_DEBUG === '1') process.stderr.write(`${err.stack ?? ''}\n`)
    this.exit(1)
  }
}
