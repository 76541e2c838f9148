// The admin token: a random secret in a 0600 file beside the key file, made by the first
// daemon that starts and never rewritten, so that every daemon of this user on the host
// and the CLI share it. A state-changing admin call carries it (Authorization: Bearer).
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ConfigError } from '../../config/errors.js'
import { checkPrivateFile, expandHome } from '../../config/files.js'
import { roleDefaults } from '../../config/defaults.js'
import { TOKEN_BYTES, TOKEN_FILE_NAME } from './constants.js'

const TOKEN_PATTERN = /^[0-9a-f]{32,256}$/

/**
 * Beside the key file (KeyFile's directory); a daemon without one (ephemeral, a port-0
 * proxy) and the CLI use the allocator's default directory, ~/.physarum.
 */
export function tokenFile(keyFile: string | undefined): string {
  const key = keyFile ?? (roleDefaults('allocator').KeyFile as string)
  return join(dirname(expandHome(key)), TOKEN_FILE_NAME)
}

function readTokenFile(file: string): string {
  checkPrivateFile(file, 'admin token file')
  let text: string
  try {
    text = readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new ConfigError(
      `admin token file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  if (!TOKEN_PATTERN.test(text))
    throw new ConfigError(`admin token file ${file} does not hold a token (32 to 256 hex digits)`)
  return text
}

/** The token in `file`, created (0600, exclusively: two daemons starting at once share one) when missing. */
export function loadOrCreateToken(file: string): { token: string; created: boolean } {
  if (!existsSync(file)) {
    const token = randomBytes(TOKEN_BYTES).toString('hex')
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
      writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' })
      return { token, created: true }
    } catch (err) {
      // Another daemon made it first: read that one.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new ConfigError(
          `admin token file ${file} cannot be created: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
        )
    }
  }
  return { token: readTokenFile(file), created: false }
}

/** The token for a CLI call; a missing file is a one-line error naming it. */
export function readToken(file: string): string {
  if (!existsSync(file))
    throw new ConfigError(
      `no admin token at ${file}: a daemon creates it at its first start (or name another with --token-file PATH)`
    )
  return readTokenFile(file)
}

/**
 * Whether an Authorization header carries `token` as a Bearer token. Both sides are hashed first, so that
 * timingSafeEqual compares equal lengths and the time says nothing about the token or its length.
 */
export function authorized(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '')
  const given = createHash('sha256')
    .update(m?.[1] ?? '')
    .digest()
  const expected = createHash('sha256').update(token).digest()
  return timingSafeEqual(given, expected) && m !== null
}
