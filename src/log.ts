// Logging: readable text on a terminal or one JSON object per line,
// always on stderr so that stdout stays free for command output.
//
// Written out rather than with winston (which wrote these same lines before): winston,
// logform and their colour and diagnostics helpers cost an idle daemon ~1-2 MB of heap
// (docs/BENCHMARKS.md, idle RSS) for a level check and one stderr write per line.

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
export type LogFormat = 'text' | 'json'

export interface Logger {
  error(msg: string, meta?: Record<string, unknown>): void
  warn(msg: string, meta?: Record<string, unknown>): void
  info(msg: string, meta?: Record<string, unknown>): void
  debug(msg: string, meta?: Record<string, unknown>): void
  scope(name: string): Logger
}

function fmtMeta (meta: Record<string, unknown>): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(meta)) {
    if (k === 'level' || k === 'message' || k === 'timestamp' || k === 'scope' || v === undefined) continue
    const s = typeof v === 'string' ? v : JSON.stringify(v)
    parts.push(`${k}=${/\s/.test(s) ? JSON.stringify(s) : s}`)
  }
  return parts.length > 0 ? ' ' + parts.join(' ') : ''
}

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

/**
 * JSON as winston's json format wrote it (safe-stable-stringify): keys sorted at every
 * depth, bigints as strings, a value that contains itself as "[Circular]".
 */
function stableJson (value: unknown): string {
  const ancestors = new Set<object>()
  const walk = (v: unknown): unknown => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON: () => unknown }).toJSON()
    if (typeof v === 'bigint') return v.toString()
    if (v === null || typeof v !== 'object') return v
    if (ancestors.has(v)) return '[Circular]'
    ancestors.add(v)
    let out: unknown
    if (Array.isArray(v)) out = v.map(walk)
    else {
      const o: Record<string, unknown> = {}
      for (const k of Object.keys(v).sort()) o[k] = walk((v as Record<string, unknown>)[k])
      out = o
    }
    ancestors.delete(v)
    return out
  }
  return JSON.stringify(walk(value))
}

function textLine (info: Record<string, unknown>): string {
  const scope = typeof info.scope === 'string' ? ` [${info.scope}]` : ''
  return `${String(info.timestamp)} ${String(info.level).padEnd(5)}${scope} ${String(info.message)}${fmtMeta(info)}`
}

interface Sink { level: number, silent: boolean, json: boolean }

class ScopedLogger implements Logger {
  constructor (private readonly sink: Sink, private readonly name?: string) {}
  private log (level: LogLevel, msg: string, meta?: Record<string, unknown>): void {
    if (this.sink.silent || LEVELS[level] > this.sink.level) return
    const info: Record<string, unknown> = { ...(this.name !== undefined ? { scope: this.name } : {}), ...meta, level, message: msg, timestamp: new Date().toISOString() }
    process.stderr.write((this.sink.json ? stableJson(info) : textLine(info)) + '\n')
  }

  error (msg: string, meta?: Record<string, unknown>): void { this.log('error', msg, meta) }
  warn (msg: string, meta?: Record<string, unknown>): void { this.log('warn', msg, meta) }
  info (msg: string, meta?: Record<string, unknown>): void { this.log('info', msg, meta) }
  debug (msg: string, meta?: Record<string, unknown>): void { this.log('debug', msg, meta) }
  scope (name: string): Logger { return new ScopedLogger(this.sink, this.name !== undefined ? `${this.name}:${name}` : name) }
}

export function createLogger (opts: { level?: LogLevel, format?: LogFormat, silent?: boolean } = {}): Logger {
  return new ScopedLogger({ level: LEVELS[opts.level ?? 'info'], silent: opts.silent ?? false, json: opts.format === 'json' })
}

/** A logger that drops everything: for tests and library use without a sink. */
export const silentLogger: Logger = createLogger({ silent: true })
