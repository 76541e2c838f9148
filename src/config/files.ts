// Paths and secret files named by the configuration (KeyFile, PskFile).
import { statSync } from 'node:fs'
import { homedir } from 'node:os'
import { resolve } from 'node:path'
import { ConfigError } from './errors.js'

export function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : resolve(p)
}

/** Refuses a secret file that group or others can read. */
export function checkPrivateFile(file: string, what: string): void {
  let mode: number
  try {
    mode = statSync(file).mode
  } catch (err) {
    throw new ConfigError(
      `${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(
      `${what} ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`
    )
  }
}
