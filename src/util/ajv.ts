// The one Ajv of the process: the config and every wire protocol compile their schemas
// on it, with one set of options. A second one, with every error, exists only to explain
// a config file that failed.
import { Ajv, type Options } from 'ajv'

// Strict: a misspelt or misplaced keyword in one of our schemas fails at compile time
// instead of validating nothing. strictRequired stays off: a `then: { required: [...] }`
// names properties that the parent schema declares, which strictRequired cannot see.
// No formats (ajv-formats): no schema of ours uses `format`.
const OPTIONS: Options = { strict: true, strictRequired: false }

/**
 * Stops at the first error: ajv's security notes warn against `allErrors` for untrusted
 * data, since it keeps validating past the first failure (and so past the maxItems and
 * maxLength bounds that keep a hostile message cheap to refuse).
 */
export const ajv = new Ajv(OPTIONS)

let reporting: Ajv | undefined

/**
 * Every error of a trusted local input (a config file), each with its data and schema, so
 * that a person fixes them all in one go. Never for wire data (see `ajv`). Made on first
 * use: a process whose config is valid never builds it.
 */
export function reportingAjv (): Ajv {
  reporting ??= new Ajv({ ...OPTIONS, allErrors: true, verbose: true })
  return reporting
}
