// Schema validation with the shared ajv, compiled once; turns ajv errors into one-line
// messages that name the JSON path and, for an unknown key, suggest the nearest known one.
import type { ErrorObject, ValidateFunction } from 'ajv'
import { multiaddr } from '@multiformats/multiaddr'
import { configSchema } from './schema.js'
import { suggest } from './errors.js'
import { ajv, reportingAjv } from '../util/ajv.js'

const validateFn = ajv.compile(configSchema)
// Compiled only when a layer failed: it lists every error, with the data describe() quotes.
let explainFn: ValidateFunction | undefined

/** `/Perf/SoftReq/RTT` → `Perf.SoftReq.RTT`, `/Bootstraps/0` → `Bootstraps[0]`. */
export function jsonPath(pointer: string, extra?: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  if (extra !== undefined) parts.push(extra)
  let out = ''
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out === '' ? p : `.${p}`
    else out += `[${JSON.stringify(p)}]`
  }
  return out === '' ? '(top level)' : out
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty)
      const known = Object.keys((e.parentSchema as { properties?: Record<string, unknown> }).properties ?? {})
      const hint = suggest(key, known)
      return `unknown key ${jsonPath(e.instancePath, key)}${hint !== undefined ? ` (did you mean ${hint}?)` : known.length > 0 ? ` (known keys: ${known.join(', ')})` : ''}`
    }
    case 'propertyNames':
      return `invalid name ${JSON.stringify(e.params.propertyName)} in ${jsonPath(e.instancePath)}`
    case 'pattern':
      if (e.propertyName !== undefined)
        return `invalid name ${JSON.stringify(e.propertyName)} in ${jsonPath(e.instancePath)}: must match ${String(e.params.pattern)}`
      return `${jsonPath(e.instancePath)}: ${JSON.stringify(e.data)} must match ${String(e.params.pattern)}`
    case 'type':
      return `${jsonPath(e.instancePath)}: must be ${String(e.params.type)}, got ${Array.isArray(e.data) ? 'array' : e.data === null ? 'null' : typeof e.data}`
    case 'enum':
      return `${jsonPath(e.instancePath)}: must be one of ${(e.params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(e.data)}`
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${jsonPath(e.instancePath)}: must be ${String(e.params.comparison)} ${String(e.params.limit)}, got ${JSON.stringify(e.data)}`
    case 'required':
      return `${jsonPath(e.instancePath, String(e.params.missingProperty))}: required`
    default:
      return `${jsonPath(e.instancePath)}: ${e.message ?? 'invalid'}`
  }
}

/** Validates a config object (one layer, or the merged result); returns readable errors. */
export function schemaErrors(value: unknown): string[] {
  if (validateFn(value)) return []
  explainFn ??= reportingAjv().compile(configSchema)
  explainFn(value)
  const errs = explainFn.errors ?? []
  // propertyNames reports twice (the pattern and the wrapper); keep the specific one.
  // Unknown keys first: a typo explains the errors that follow from it (a missing key).
  const ranked = [...errs].sort(
    (a, b) => Number(b.keyword === 'additionalProperties') - Number(a.keyword === 'additionalProperties')
  )
  const out = ranked
    .filter(
      e => !(e.keyword === 'propertyNames' && errs.some(o => o.keyword === 'pattern' && o.propertyName !== undefined))
    )
    .map(describe)
  return [...new Set(out)]
}

/** Checks a multiaddr; with `needPeer`, it must end in /p2p/<peer id> (a bootstrap). */
export function multiaddrError(value: string, needPeer: boolean): string | undefined {
  try {
    const ma = multiaddr(value)
    const comps = ma.getComponents()
    if (needPeer && !comps.some(c => c.name === 'p2p')) return `${JSON.stringify(value)} has no /p2p/<peer id> part`
    if (!comps.some(c => c.name === 'tcp')) return `${JSON.stringify(value)} is not a TCP address`
    return undefined
  } catch (err) {
    return `${JSON.stringify(value)} is not a valid multiaddr (${(err as Error).message})`
  }
}
