// Turns parsed flags into a loaded config and a logger: the first steps of every command.
// The config is complete for the role the command runs as (its defaults resolved in).
import { loadConfig, type LoadedConfig } from '../config/load.js'
import type { Role } from '../config/defaults.js'
import { createLogger, type Logger } from '../util/log.js'
import { toConfigFlags } from './flags.js'

/**
 * The role a command's config is for (`members` joins, if it must, as an observer), and the
 * proxy's entrypoint port when it was given (its key file's default depends on it).
 */
export interface RunAs {
  role: Role
  port?: number
  /** A proxy that serves an app (--app): see LoadOptions.serverMode. */
  serverMode?: boolean
}

export function setup(
  flags: Record<string, unknown>,
  runAs: RunAs
): { loaded: LoadedConfig; log: Logger; reload: () => LoadedConfig } {
  const configFlags = toConfigFlags(flags)
  if (runAs.port !== undefined) configFlags.port = runAs.port
  // A reload reads the same file, environment and flags again: what changed is the file's.
  const reload = (): LoadedConfig => loadConfig({ role: runAs.role, flags: configFlags, serverMode: runAs.serverMode })
  const loaded = reload()
  const log = createLogger({ level: loaded.config.Log.Level, format: loaded.config.Log.Format })
  return { loaded, log, reload }
}
