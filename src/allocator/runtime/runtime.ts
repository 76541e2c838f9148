// The runtime interface: where instances run. Two implementations, Docker (dockerode)
// and local processes; the instance manager knows only this interface.
import type { AppSpec } from '../../catalog/catalog.js'

export interface RuntimeInstance {
  /** physarum's instance id (also in the container label / state file). */
  id: string
  app: string
  /** Where the allocator reaches the instance: always 127.0.0.1. */
  host: string
  port: number
  /** Container id or process group id. */
  handle: string
  startedAt: number
}

export type RuntimeEvent = { type: 'exited'; id: string; reason: string }

export class StartError extends Error {
  override name = 'StartError'
}

export interface Runtime {
  readonly kind: 'docker' | 'process'
  /**
   * Creates and starts an instance; resolves once it runs (not yet ready). It takes no abort
   * signal: a start takes well under a second, and an instance removed meanwhile (shutdown,
   * a death event) is stopped by the manager as soon as its start resolves.
   */
  start: (spec: AppSpec, id: string) => Promise<RuntimeInstance>
  /** Stops with SIGTERM, a short grace, then kill; removes what it created. Idempotent. */
  stop: (inst: RuntimeInstance, opts?: { graceMs?: number }) => Promise<void>
  /** Instances this allocator created earlier (restart recovery). */
  listOwn: () => Promise<RuntimeInstance[]>
  /** Whether the instance still runs. */
  isRunning: (inst: RuntimeInstance) => Promise<boolean>
  /** Exits and deaths, as they happen. */
  onEvent: (fn: (e: RuntimeEvent) => void) => void
  close: () => Promise<void>
}

/** The longest line handed on as one (app output, Docker events); longer runs come in pieces. */
export const MAX_LOG_LINE = 16 * 1024

/**
 * Calls `fn` for each line of `stream`. Unlike readline, a stream without newlines
 * cannot grow the allocator's memory: a partial line is cut at MAX_LOG_LINE.
 */
export function logLines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let partial = ''
  // Any line longer than MAX_LOG_LINE goes out in pieces: a held partial line as soon as it
  // has a whole piece, a line that ends in this chunk (what was held, plus the chunk) at once.
  const emit = (line: string): void => {
    if (line.length <= MAX_LOG_LINE) {
      fn(line)
      return
    }
    for (let i = 0; i < line.length; i += MAX_LOG_LINE) fn(line.slice(i, i + MAX_LOG_LINE))
  }
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const l of lines) emit(l.endsWith('\r') ? l.slice(0, -1) : l)
    const whole = partial.length - (partial.length % MAX_LOG_LINE)
    if (whole > 0) {
      emit(partial.slice(0, whole))
      partial = partial.slice(whole)
    }
  })
  stream.on('end', () => {
    if (partial !== '') fn(partial)
  })
}
