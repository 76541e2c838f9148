// `config init`: a working config with a fresh PSK, written 0600, never over an
// existing file unless forced.
import { existsSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs'
import { dirname } from 'node:path'
import { generatePsk } from './psk.js'
import { builtinDefaults } from './defaults.js'
import { ConfigError } from './errors.js'
import { multiaddrError } from './validate.js'

export function initialConfig(bootstraps: string[] = []): Record<string, unknown> {
  const d = builtinDefaults()
  return {
    Perf: d.Perf,
    Bootstraps: bootstraps,
    // No Listen: the file goes to every host, and each role's own default applies (an
    // allocator's port 4001 in a proxy's config would collide with the host's allocator).
    Psk: generatePsk(),
    Apps: d.Apps,
    Allocator: { Runtime: d.Allocator.Runtime, MaxInstances: d.Allocator.MaxInstances, MemoryMB: d.Allocator.MemoryMB },
    Proxy: { Port: d.Proxy.Port },
    Log: d.Log
  }
}

/** Writes the file (or stdout for "-"); returns the path written, undefined for stdout. */
export function writeInitialConfig(opts: {
  output: string
  force?: boolean
  bootstraps?: string[]
}): string | undefined {
  for (const b of opts.bootstraps ?? []) {
    const e = multiaddrError(b, true)
    if (e !== undefined) throw new ConfigError(`--bootstrap: ${e}`)
  }
  const text = JSON.stringify(initialConfig(opts.bootstraps), null, 2) + '\n'
  if (opts.output === '-') {
    process.stdout.write(text)
    return undefined
  }
  if (existsSync(opts.output) && opts.force !== true)
    throw new ConfigError(`${opts.output} exists; pass --force to overwrite it`)
  try {
    mkdirSync(dirname(opts.output), { recursive: true })
    writeFileSync(opts.output, text, { mode: 0o600 })
    chmodSync(opts.output, 0o600)
  } catch (err) {
    throw new ConfigError(
      `cannot write ${opts.output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  return opts.output
}
