// Logging: winston, readable text on a terminal or one JSON object per line,
// always on stderr so that stdout stays free for command output.
import winston from 'winston'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
export type LogFormat = 'text' | 'json'

export interface Logger {
  error(msg: string, meta?: Record<string, unknown>): void
  warn(msg: string, meta?: Record<string, unknown>): void
  info(msg: string, meta?: Record<string, unknown>): void
  debug(msg: string, meta?: Record<string, unknown>): void
  scope(name: string): Logger
  /** Changes the level of this logger and of every scope of it (a config reload). */
  setLevel(level: LogLevel): void
}

function fmtMeta(meta: Record<string, unknown>): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(meta)) {
    if (k === 'level' || k === 'message' || k === 'timestamp' || k === 'scope' || v === undefined) continue
    const s = typeof v === 'string' ? v : JSON.stringify(v)
    parts.push(`${k}=${/\s/.test(s) ? JSON.stringify(s) : s}`)
  }
  return parts.length > 0 ? ' ' + parts.join(' ') : ''
}

const textFormat = winston.format.printf(info => {
  const scope = typeof info.scope === 'string' ? ` [${info.scope}]` : ''
  return `${String(info.timestamp)} ${info.level.padEnd(5)}${scope} ${String(info.message)}${fmtMeta(info as Record<string, unknown>)}`
})

class ScopedLogger implements Logger {
  constructor(
    private readonly w: winston.Logger,
    private readonly name?: string
  ) {}
  private log(level: LogLevel, msg: string, meta?: Record<string, unknown>): void {
    if (!this.w.isLevelEnabled(level)) return
    this.w.log(level, msg, { ...(this.name !== undefined ? { scope: this.name } : {}), ...meta })
  }

  error(msg: string, meta?: Record<string, unknown>): void {
    this.log('error', msg, meta)
  }
  warn(msg: string, meta?: Record<string, unknown>): void {
    this.log('warn', msg, meta)
  }
  info(msg: string, meta?: Record<string, unknown>): void {
    this.log('info', msg, meta)
  }
  debug(msg: string, meta?: Record<string, unknown>): void {
    this.log('debug', msg, meta)
  }
  scope(name: string): Logger {
    return new ScopedLogger(this.w, this.name !== undefined ? `${this.name}:${name}` : name)
  }
  setLevel(level: LogLevel): void {
    this.w.level = level
  }
}

export function createLogger(opts: { level?: LogLevel; format?: LogFormat; silent?: boolean } = {}): Logger {
  const w = winston.createLogger({
    level: opts.level ?? 'info',
    silent: opts.silent ?? false,
    format:
      opts.format === 'json'
        ? winston.format.combine(winston.format.timestamp(), winston.format.json())
        : winston.format.combine(winston.format.timestamp(), textFormat),
    transports: [
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })
    ]
  })
  return new ScopedLogger(w)
}

/** A logger that drops everything: for tests and library use without a sink. */
export const silentLogger: Logger = createLogger({ silent: true })

/**
 * For a failure that must not stop what goes on (a stop step, a best-effort close): it is
 * logged at debug, so that it is seen when asked for, never swallowed unseen.
 */
export function debugOn(log: Logger, what: string): (err: unknown) => void {
  return err => {
    log.debug(`${what}: ${(err as Error)?.message ?? String(err)}`)
  }
}
