// Renders the effective configuration for `config show`: JSON, or one `Key = value`
// line per leaf, optionally with the layer each value came from (a role's own defaults
// as `default for <role>`). The PSK is hidden.
import type { LoadedConfig } from './load.js'
import { configSchema } from './schema.js'

function flatten(value: unknown, path: string, out: Array<[string, unknown]>): void {
  // Apps stop one level down: one line per app reads better than one per app field.
  if (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length > 0 &&
    !path.startsWith('Apps.')
  ) {
    for (const [k, v] of Object.entries(value)) flatten(v, path === '' ? k : `${path}.${k}`, out)
  } else {
    out.push([path, value])
  }
}

export interface RenderOptions {
  sources?: boolean
  json?: boolean
  showSecrets?: boolean
}

export function renderConfig(loaded: LoadedConfig, opts: RenderOptions): string {
  // In the schema's order, not the merge's (which adds the role's Listen and KeyFile last).
  const config: Record<string, unknown> = {}
  const all = loaded.config as Record<string, unknown>
  for (const k of Object.keys(configSchema.properties)) if (k in all) config[k] = all[k]
  if (config.Psk !== undefined && opts.showSecrets !== true) config.Psk = '(hidden; --show-secrets prints it)'
  const sourceOf = (path: string): string => {
    for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
      const s = loaded.sources.get(p)
      if (s === 'file' && loaded.file !== undefined) return `file ${loaded.file}`
      if (s === 'role') return `default for ${loaded.role}`
      if (s !== undefined) return s
    }
    return 'default'
  }
  const leaves: Array<[string, unknown]> = []
  flatten(config, '', leaves)
  if (opts.json === true) {
    const body =
      opts.sources === true
        ? {
            config,
            role: loaded.role,
            file: loaded.file ?? null,
            sources: Object.fromEntries(leaves.map(([p]) => [p, sourceOf(p)]))
          }
        : config
    return JSON.stringify(body, null, 2) + '\n'
  }
  const width = Math.max(...leaves.map(([p]) => p.length))
  const lines = leaves.map(([p, v]) => {
    const line = `${p.padEnd(width)} = ${JSON.stringify(v)}`
    return opts.sources === true ? `${line}    (${sourceOf(p)})` : line
  })
  return lines.join('\n') + '\n'
}
