// Turns parsed flags into a loaded config and a logger: the first steps of every command.
// The config is complete for the role the command runs as (its defaults resolved in).
import { loadConfig, type LoadedConfig } from '../config/load.js'
import type { Role } from '../config/defaults.js'
import { createLogger, type Logger } from '../util/log.js'
import { toConfigFlags } from './flags.js'
import { INVOCATION, type Invocation } from './base.js'

/** The role a command's config is for, and the proxy's entrypoint port when its role default depends on it. */
export interface RunAs { role: Role, port?: number }

// The role of each command that calls setup(); `members` joins, if it must, as an observer.
const ROLE_OF_COMMAND: Readonly<Record<string, Role>> = { allocator: 'allocator', proxy: 'proxy', members: 'observer' }

/** The role of the command that parsed `flags` (BaseCommand leaves its invocation on them). */
export function runAsOf (flags: Record<string, unknown>): RunAs {
  const inv = (flags as Record<symbol, Invocation | undefined>)[INVOCATION]
  const role = inv?.command !== undefined ? ROLE_OF_COMMAND[inv.command] : undefined
  if (inv === undefined || role === undefined) throw new Error(`setup: no role for the command ${inv?.command ?? '(flags not parsed by a BaseCommand)'}; pass one`)
  // The proxy's port as --port or in the original positional form (`physarum proxy 1234`).
  const port = (flags.port ?? inv.args.port) as number | undefined
  return { role, ...(port !== undefined ? { port } : {}) }
}

export function setup (
  flags: Record<string, unknown>,
  runAs: RunAs = runAsOf(flags)
): { loaded: LoadedConfig, log: Logger } {
  const configFlags = toConfigFlags(flags)
  if (runAs.port !== undefined) configFlags.port = runAs.port
  const loaded = loadConfig({ role: runAs.role, flags: configFlags })
  const log = createLogger({ level: loaded.config.Log.Level, format: loaded.config.Log.Format })
  return { loaded, log }
}
