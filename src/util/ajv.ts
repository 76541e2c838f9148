// The one Ajv of the process: the config and every wire protocol compile their schemas
// on it, with one set of options, and take their TypeScript types from the same schemas
// (FromSchema). A second Ajv, with every error, exists only to explain a config file
// that failed.
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
export function reportingAjv(): Ajv {
  reporting ??= new Ajv({ ...OPTIONS, allErrors: true, verbose: true })
  return reporting
}

// --- Types from schemas ------------------------------------------------------------------
// FromSchema<typeof schema> is the type of what a schema written `as const` accepts, for
// the keywords our schemas use (type, properties, required, additionalProperties, items,
// enum, const); others (bounds, patterns) narrow values, not types. The types follow the
// schemas, so a key added to, renamed in or removed from a schema changes the type with it
// and the compiler finds every use that no longer fits.

type Flatten<T> = { [K in keyof T]: T[K] }

type RequiredKeys<S> = S extends { required: ReadonlyArray<infer R> } ? R : never

type PropertiesOf<P, R> = { -readonly [K in keyof P as K extends R ? K : never]: FromSchema<P[K]> } & {
  -readonly [K in keyof P as K extends R ? never : K]?: FromSchema<P[K]>
}

// additionalProperties: false → closed; a schema → a record of it; absent → unknown keys
// are tolerated (wire messages, for rolling upgrades) and typed unknown.
type ExtraOf<S> = S extends { additionalProperties: false }
  ? unknown
  : S extends { additionalProperties: infer A extends object }
    ? Record<string, FromSchema<A>>
    : Record<string, unknown>

type PropertiesOfSchema<S> = S extends { properties: infer P } ? PropertiesOf<P, RequiredKeys<S>> : unknown

type ObjectOf<S> = Flatten<PropertiesOfSchema<S> & ExtraOf<S>>

export type FromSchema<S> = S extends { const: infer C }
  ? C
  : S extends { enum: ReadonlyArray<infer E> }
    ? E
    : S extends { type: 'string' }
      ? string
      : S extends { type: 'number' | 'integer' }
        ? number
        : S extends { type: 'boolean' }
          ? boolean
          : S extends { type: 'array'; items: infer I }
            ? Array<FromSchema<I>>
            : S extends { type: 'object' }
              ? ObjectOf<S>
              : unknown
