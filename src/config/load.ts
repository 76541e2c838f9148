// Loads the complete configuration a daemon runs with: built-in defaults ← the role's
// defaults ← file ← environment ← flags, validating each layer and remembering where
// every value came from.
import { existsSync, readFileSync } from 'node:fs'
import { builtinDefaults, roleDefaults, type Role } from './defaults.js'
import { ConfigError } from './errors.js'
import { jsonPath, multiaddrError, schemaErrors } from './validate.js'
import type { Config } from './schema.js'
import { resolvePsk } from './psk.js'

export { expandHome, checkPrivateFile } from './files.js'

/** Where a value came from; `role`: the default of the role the config was loaded for. */
export type Source = 'default' | 'role' | 'file' | 'env' | 'flag'
type Layer = Record<string, unknown>

export interface ConfigFlags {
  configfile?: string
  bootstrap?: string[]
  listen?: string[]
  'psk-file'?: string
  keyfile?: string
  /** A throwaway identity: no KeyFile, whatever the layers say. */
  ephemeral?: boolean
  'log-level'?: string
  'log-format'?: string
  admin?: string
  /** The proxy's entrypoint (Proxy.Port, Proxy.Bind). */
  port?: number
  bind?: string
  /** Proxy.Tls.CertFile, Proxy.Tls.KeyFile. */
  'tls-cert'?: string
  'tls-key'?: string
}

export interface LoadedConfig {
  config: Config
  /** The role whose defaults are in `config`. */
  role: Role
  /** The file that was read, if any. */
  file?: string
  /** Source of each leaf value, keyed by dotted path (e.g. `Perf.SoftReq.RTT`). */
  sources: Map<string, Source>
}

export const SYSTEM_CONFIG = '/etc/physarum/conf.json'
export const LOCAL_CONFIG = './conf/conf.json'

// Values replaced as a whole by a higher layer rather than merged key by key.
const ATOMIC = new Set(['Apps', 'Bootstraps', 'Listen', 'Announce'])

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function merge(base: Layer, over: Layer, path = ''): Layer {
  const out: Layer = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const p = path === '' ? k : `${path}.${k}`
    out[k] = isObject(v) && isObject(base[k]) && !ATOMIC.has(p) ? merge(base[k], v, p) : v
  }
  return out
}

function leaves(layer: Layer, path = '', out: string[] = []): string[] {
  for (const [k, v] of Object.entries(layer)) {
    const p = path === '' ? k : `${path}.${k}`
    if (isObject(v) && !ATOMIC.has(p) && Object.keys(v).length > 0) leaves(v, p, out)
    else out.push(p)
  }
  return out
}

/** Where the config file is when --configfile is not given; undefined → defaults only. */
export function defaultConfigFile(): string | undefined {
  if (existsSync(LOCAL_CONFIG)) return LOCAL_CONFIG
  if (existsSync(SYSTEM_CONFIG)) return SYSTEM_CONFIG
  return undefined
}

function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos)
  const line = before.split('\n').length
  const col = pos - before.lastIndexOf('\n')
  return `line ${line}, column ${col}`
}

/** Reads and parses a config file; errors are one line naming the file. */
export function readConfigFile(file: string): Layer {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new ConfigError(`config file ${file} not found`)
    if (code === 'EISDIR') throw new ConfigError(`config file ${file} is a directory`)
    throw new ConfigError(`config file ${file} cannot be read: ${code ?? (err as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    const msg = (err as Error).message
    const m = /position (\d+)/.exec(msg) ?? /line (\d+) column (\d+)/.exec(msg)
    const where =
      m === null
        ? lineCol(text, text.length)
        : m.length === 3
          ? `line ${m[1]}, column ${m[2]}`
          : lineCol(text, Number(m[1]))
    const reason = msg.replace(/ in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)/, '')
    throw new ConfigError(`config file ${file}: invalid JSON at ${where}: ${reason}`)
  }
  if (!isObject(parsed))
    throw new ConfigError(
      `config file ${file}: must hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`
    )
  return parsed
}

function splitList(v: string): string[] {
  return v.split(/[\s,]+/).filter(s => s !== '')
}

function envLayer(env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = {}
  const boots = env.PHYSARUM_BOOTSTRAPS ?? env.P2P_BOOTSTRAPS
  if (boots !== undefined && boots.trim() !== '') layer.Bootstraps = splitList(boots)
  const psk = env.PHYSARUM_PSK ?? env.P2P_PSK
  if (psk !== undefined && psk !== '') layer.Psk = psk
  const fast = env.PHYSARUM_LOCAL_FAST_PATH
  if (fast !== undefined && fast !== '') {
    if (!/^(0|1|true|false)$/.test(fast))
      throw new ConfigError(`PHYSARUM_LOCAL_FAST_PATH must be 0, 1, true or false, not ${JSON.stringify(fast)}`)
    layer.Proxy = { LocalFastPath: fast === '1' || fast === 'true' }
  }
  return layer
}

function flagLayer(flags: ConfigFlags): Layer {
  const layer: Layer = {}
  if (flags.bootstrap !== undefined && flags.bootstrap.length > 0) layer.Bootstraps = flags.bootstrap.flatMap(splitList)
  if (flags.listen !== undefined && flags.listen.length > 0) layer.Listen = flags.listen
  if (flags['psk-file'] !== undefined) layer.PskFile = flags['psk-file']
  if (flags.keyfile !== undefined) layer.KeyFile = flags.keyfile
  if (flags.admin !== undefined) layer.Admin = { Listen: flags.admin }
  const proxy: Layer = {}
  if (flags.port !== undefined) proxy.Port = flags.port
  if (flags.bind !== undefined) proxy.Bind = flags.bind
  const tls: Layer = {}
  if (flags['tls-cert'] !== undefined) tls.CertFile = flags['tls-cert']
  if (flags['tls-key'] !== undefined) tls.KeyFile = flags['tls-key']
  if (Object.keys(tls).length > 0) proxy.Tls = tls
  if (Object.keys(proxy).length > 0) layer.Proxy = proxy
  const log: Layer = {}
  if (flags['log-level'] !== undefined) log.Level = flags['log-level']
  if (flags['log-format'] !== undefined) log.Format = flags['log-format']
  if (Object.keys(log).length > 0) layer.Log = log
  return layer
}

function check(layer: Layer, what: string): void {
  const errs = schemaErrors(layer)
  if (errs.length > 0) {
    const more = errs.length > 1 ? ` (and ${errs.length - 1} more; see physarum config validate)` : ''
    throw new ConfigError(
      `${what}: ${errs[0]}${more}`,
      errs.map(e => `${what}: ${e}`)
    )
  }
}

/** Multiaddr and cross-field checks on the merged config. */
function semanticErrors(cfg: Config, sources: Map<string, Source>): string[] {
  const errs: string[] = []
  cfg.Bootstraps.forEach((b, i) => {
    const e = multiaddrError(b, true)
    if (e !== undefined) errs.push(`Bootstraps[${i}] (${sources.get('Bootstraps') ?? 'default'}): ${e}`)
  })
  for (const key of ['Listen', 'Announce'] as const) {
    for (const [i, l] of (cfg[key] ?? []).entries()) {
      const e = multiaddrError(l, false)
      if (e !== undefined) errs.push(`${key}[${i}] (${sources.get(key) ?? 'default'}): ${e}`)
    }
  }
  if (cfg.Perf.SoftReq.RTT > cfg.Perf.HardReq.RTT)
    errs.push(`Perf: SoftReq.RTT (${cfg.Perf.SoftReq.RTT}) must not exceed HardReq.RTT (${cfg.Perf.HardReq.RTT})`)
  for (const [name, app] of Object.entries(cfg.Apps)) {
    const soft = app.Perf?.SoftReq?.RTT
    const hard = app.Perf?.HardReq?.RTT
    if (soft !== undefined && hard !== undefined && soft > hard)
      errs.push(`Apps.${jsonPath('/' + name)}.Perf: SoftReq.RTT must not exceed HardReq.RTT`)
    if (app.MinInstances !== undefined && app.MaxInstances !== undefined && app.MinInstances > app.MaxInstances)
      errs.push(`Apps[${JSON.stringify(name)}]: MinInstances must not exceed MaxInstances`)
  }
  return errs
}

/**
 * The role's defaults for the keys no layer set. An observer (`members` joining briefly)
 * and an ephemeral daemon have no KeyFile even when the file names one: a config file
 * shared with the host's allocator must not give them its identity.
 */
function resolveRole(merged: Layer, sources: Map<string, Source>, role: Role, flags: ConfigFlags): void {
  const cfg = merged as unknown as Omit<Config, 'Listen'> & Partial<Pick<Config, 'Listen'>>
  const d = roleDefaults(role, { proxyPort: cfg.Proxy.Port, bootstraps: cfg.Bootstraps })
  if (cfg.Listen === undefined) {
    merged.Listen = d.Listen
    sources.set('Listen', 'role')
  }
  if (cfg.Admin.Listen === undefined && d.AdminListen !== undefined) {
    merged.Admin = { ...cfg.Admin, Listen: d.AdminListen }
    sources.set('Admin.Listen', 'role')
  }
  if (role === 'observer' || flags.ephemeral === true) {
    delete merged.KeyFile
    sources.delete('KeyFile')
  } else if (cfg.KeyFile === undefined && d.KeyFile !== undefined) {
    merged.KeyFile = d.KeyFile
    sources.set('KeyFile', 'role')
  }
}

export interface LoadOptions {
  /** The role the config is for: its defaults (Listen, KeyFile, Admin.Listen) are resolved in. */
  role: Role
  flags?: ConfigFlags
  env?: NodeJS.ProcessEnv
  /** Skip the file search (tests). */
  noFile?: boolean
  /**
   * A proxy in server mode (--app): unless a layer sets Proxy.Port, its entrypoint takes a
   * free port (and so has no stable identity of its own), so that several share a host.
   */
  serverMode?: boolean
}

/** The complete configuration of `role`: every default resolved, flags applied. */
export function loadConfig(opts: LoadOptions): LoadedConfig {
  const flags = opts.flags ?? {}
  const env = opts.env ?? process.env
  const file = flags.configfile ?? (opts.noFile === true ? undefined : defaultConfigFile())
  const layers: Array<[Source, Layer]> = [['default', builtinDefaults() as unknown as Layer]]
  if (file !== undefined) {
    const fileLayer = readConfigFile(file)
    check(fileLayer, `config file ${file}`)
    layers.push(['file', fileLayer])
  }
  const e = envLayer(env)
  check(e, 'environment')
  layers.push(['env', e])
  const f = flagLayer(flags)
  check(f, 'flags')
  layers.push(['flag', f])

  let merged: Layer = {}
  const sources = new Map<string, Source>()
  for (const [src, layer] of layers) {
    merged = merge(merged, layer)
    for (const p of leaves(layer)) sources.set(p, src)
    // Psk and PskFile are one setting: the higher layer's choice replaces the lower one's.
    if ('Psk' in layer && !('PskFile' in layer)) {
      delete merged.PskFile
      sources.delete('PskFile')
    }
    if ('PskFile' in layer && !('Psk' in layer)) {
      delete merged.Psk
      sources.delete('Psk')
    }
  }
  // Drop sources of leaves that a higher atomic layer replaced.
  const live = new Set(leaves(merged))
  for (const p of [...sources.keys()]) if (!live.has(p)) sources.delete(p)
  const config = merged as unknown as Config
  const errs = semanticErrors(config, sources)
  if (errs.length > 0) throw new ConfigError(errs[0], errs)
  if (config.Psk !== undefined && config.PskFile !== undefined) throw new ConfigError('set Psk or PskFile, not both')
  // After the checks: an observer's Listen depends on the bootstraps being valid multiaddrs.
  if (opts.role === 'proxy' && opts.serverMode === true && (sources.get('Proxy.Port') ?? 'default') === 'default') {
    ;(merged.Proxy as Record<string, unknown>).Port = 0
    sources.set('Proxy.Port', 'role')
  }
  resolveRole(merged, sources, opts.role, flags)
  // Read the PSK now, so that an unreadable or exposed PSK file fails at load, not at first dial.
  resolvePsk(config)
  return { config, role: opts.role, file, sources }
}

/** Validates one file on its own merits (for `config validate`): every error, not just the first. */
export function validateFile(file: string): string[] {
  let layer: Layer
  try {
    layer = readConfigFile(file)
  } catch (err) {
    if (err instanceof ConfigError) return [err.message]
    throw err
  }
  const errs = schemaErrors(layer)
  if (errs.length > 0) return errs
  try {
    // The role does not matter here: only the file's own values are checked.
    loadConfig({ role: 'allocator', flags: { configfile: file }, env: {} })
  } catch (err) {
    if (err instanceof ConfigError) return err.details
    throw err
  }
  return []
}
