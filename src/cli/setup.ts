// Turns parsed flags into a loaded config and a logger: the first steps of every command.
import { loadConfig, type LoadedConfig } from '../config/load.js'
import { createLogger, type Logger } from '../util/log.js'
import { toConfigFlags } from './flags.js'

export function setup (flags: Record<string, unknown>): { loaded: LoadedConfig, log: Logger } {
  const loaded = loadConfig({ flags: toConfigFlags(flags) })
  const log = createLogger({ level: loaded.config.Log.Level, format: loaded.config.Log.Format })
  return { loaded, log }
}
