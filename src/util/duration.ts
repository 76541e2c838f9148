// Durations as people write them on a command line: 30s, 500ms, 5m, 1h, or a bare number of seconds.

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 }

/** Seconds, or undefined when `s` is not a duration. */
export function parseDuration(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(s)
  if (m === null) return undefined
  const v = Number(m[1]) * UNITS[m[2] ?? 's']
  return Number.isFinite(v) ? v : undefined
}
