// The cluster's pre-shared key: parsed from 64 hex digits, a libp2p swarm.key, or a
// passphrase (hashed with SHA-256), and turned into the swarm-key bytes that pnet reads.
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { ConfigError } from './errors.js'
import { checkPrivateFile, expandHome } from './files.js'
import type { Config } from './schema.js'

const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\s*\n\/base16\/\s*\n\s*([0-9a-fA-F]{64})\s*$/

/** A fresh random PSK as 64 hex digits. */
export function generatePsk(): string {
  return randomBytes(32).toString('hex')
}

/** 64 hex digits from any accepted PSK text. */
export function pskHex(text: string): string {
  const t = text.trim()
  const swarm = SWARM_KEY.exec(t)
  if (swarm !== null) return swarm[1].toLowerCase()
  if (/^[0-9a-fA-F]{64}$/.test(t)) return t.toLowerCase()
  if (t === '') throw new ConfigError('the PSK is empty')
  return createHash('sha256').update(t, 'utf8').digest('hex')
}

/** The swarm-key bytes for @libp2p/pnet. */
export function swarmKey(hex: string): Uint8Array {
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex}`)
}

/** The configured PSK as swarm-key bytes, or undefined when the node runs open. */
export function resolvePsk(cfg: Pick<Config, 'Psk' | 'PskFile'>): { key: Uint8Array; fingerprint: string } | undefined {
  let text: string
  if (cfg.PskFile !== undefined) {
    const file = expandHome(cfg.PskFile)
    try {
      checkPrivateFile(file, 'PSK file')
      text = readFileSync(file, 'utf8')
    } catch (err) {
      if (err instanceof ConfigError) throw err
      throw new ConfigError(
        `PSK file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      )
    }
  } else if (cfg.Psk !== undefined) {
    text = cfg.Psk
  } else {
    return undefined
  }
  const hex = pskHex(text)
  // A fingerprint lets operators compare keys across hosts without showing them.
  const fingerprint = createHash('sha256').update(hex).digest('hex').slice(0, 12)
  return { key: swarmKey(hex), fingerprint }
}
