// Renders the effective configuration for `config show`: JSON, or one `Key = value`
// line per leaf, optionally with the layer each value came from. The PSK is hidden.
import type { LoadedConfig } from './load.js'

function flatten (value: unknown, path: string, out: Array<[string, unknown]>): void {
  // Apps stop one level down: one line per app reads better than one per app field.
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0 && !path.startsWith('Apps.')) {
    for (const [k, v] of Object.entries(value)) flatten(v, path === '' ? k : `${path}.${k}`, out)
  } else {
    out.push([path, value])
  }
}

export function renderConfig (loaded: LoadedConfig, opts: { sources?: boolean, json?: boolean, showSecrets?: boolean }): string {
  const config: Record<string, unknown> = { ...loaded.config }
  if (config.Psk !== undefined && opts.showSecrets !== true) config.Psk = '(hidden; --show-secrets prints it)'
  const sourceOf = (path: string): string => {
    for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
      const s = loaded.sources.get(p)
      if (s !== undefined) return s === 'file' && loaded.file !== undefined ? `file ${loaded.file}` : s
    }
    return 'default'
  }
  const leaves: Array<[string, unknown]> = []
  flatten(config, '', leaves)
  if (opts.json === true) {
    const body = opts.sources === true
      ? { config, file: loaded.file ?? null, sources: Object.fromEntries(leaves.map(([p]) => [p, sourceOf(p)])) }
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
