// The base of every command: one-line errors with exit code 2 for bad input
// (flags, config, unreachable agent), never a stack trace.
import { Command, Flags, type Interfaces } from '@oclif/core'
import { ConfigError } from '../config/errors.js'

/** Which command runs, with its positional arguments: what setup() (cli/setup.ts) needs to know its role. */
export interface Invocation { command: string | undefined, args: Record<string, unknown> }

/** Where parse() leaves the Invocation on the parsed flags, so that setup(flags) finds it. */
export const INVOCATION = Symbol('physarum.invocation')

type Parsed = Record<string, unknown>

/** An error the user caused or can fix: printed as one line, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError'
  constructor (message: string, readonly exitCode = 2) { super(message) }
}

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    version: Flags.version({ description: 'show the physarum version' }),
    help: Flags.help({ description: 'show help' })
  }

  // The parsed flags carry the invocation (enumerable, so that a copy of the flags keeps it;
  // a symbol, so that no flag can collide with it and JSON never shows it).
  protected override async parse<F extends Parsed, B extends Parsed, A extends Parsed> (
    options?: Interfaces.Input<F, B, A>,
    argv?: string[]
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const out = await super.parse(options, argv)
    const invocation: Invocation = { command: this.id, args: out.args }
    Object.defineProperty(out.flags, INVOCATION, { value: invocation, enumerable: true })
    return out
  }

  override async catch (err: Error & { exitCode?: number, oclif?: { exit?: number }, code?: string }): Promise<void> {
    if (err.code === 'EEXIT' || err.oclif?.exit === 0) throw err
    const firstLine = (s: string): string => s.split('\n').map(l => l.trim()).find(l => l !== '') ?? s
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
