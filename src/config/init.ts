// `config init`: a working config with a fresh PSK, written 0600, never over an
// existing file unless forced.
import { existsSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { writeSelfSigned } from './tls.js'
import { generatePsk } from './psk.js'
import { builtinDefaults } from './defaults.js'
import { ConfigError } from './errors.js'
import { multiaddrError } from './validate.js'

export function initialConfig(
  bootstraps: string[] = [],
  tls?: { CertFile: string; KeyFile: string }
): Record<string, unknown> {
  const d = builtinDefaults()
  return {
    Perf: d.Perf,
    Bootstraps: bootstraps,
    // No Listen: the file goes to every host, and each role's own default applies (an
    // allocator's port 4001 in a proxy's config would collide with the host's allocator).
    Psk: generatePsk(),
    Apps: d.Apps,
    Allocator: { Runtime: d.Allocator.Runtime, MaxInstances: d.Allocator.MaxInstances, MemoryMB: d.Allocator.MemoryMB },
    Proxy: { Port: d.Proxy.Port, ...(tls !== undefined ? { Tls: tls } : {}) },
    Log: d.Log
  }
}

/** Writes the file (or stdout for "-"); returns the path written, undefined for stdout. */
export function writeInitialConfig(opts: {
  output: string
  force?: boolean
  bootstraps?: string[]
  /** Also a self-signed certificate and key beside the file, and Proxy.Tls naming them. */
  tls?: boolean
}): string | undefined {
  for (const b of opts.bootstraps ?? []) {
    const e = multiaddrError(b, true)
    if (e !== undefined) throw new ConfigError(`--bootstrap: ${e}`)
  }
  let tls: { CertFile: string; KeyFile: string } | undefined
  if (opts.tls === true) {
    if (opts.output === '-') throw new ConfigError('--tls writes the certificate beside the file: give --output FILE')
    const dir = dirname(resolve(opts.output))
    tls = { CertFile: join(dir, 'tls.crt'), KeyFile: join(dir, 'tls.key') }
  }
  const text = JSON.stringify(initialConfig(opts.bootstraps, tls), null, 2) + '\n'
  if (opts.output === '-') {
    process.stdout.write(text)
    return undefined
  }
  if (existsSync(opts.output) && opts.force !== true)
    throw new ConfigError(`${opts.output} exists; pass --force to overwrite it`)
  try {
    mkdirSync(dirname(opts.output), { recursive: true })
    if (tls !== undefined) writeSelfSigned(tls.CertFile, tls.KeyFile, opts.force)
    writeFileSync(opts.output, text, { mode: 0o600 })
    chmodSync(opts.output, 0o600)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(
      `cannot write ${opts.output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  return opts.output
}
