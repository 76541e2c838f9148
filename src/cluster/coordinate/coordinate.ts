// A Vivaldi network coordinate: a point in a Euclidean space plus a height (the access
// link) and an adjustment (what the embedding cannot fit); the estimated RTT between two
// nodes is the distance between their coordinates. Pure functions, as Serf's coordinate/.
import { ZERO_THRESHOLD, type CoordinateConfig } from './constants.js'

// A type, not an interface: it must fit the wire schemas' types, which allow unknown fields.
export type Coordinate = {
  vec: number[]
  /** The node's confidence in its own coordinate: 0 perfect … vivaldiErrorMax unknown. */
  error: number
  /** Seconds added to every distance from this node (the adjustment term). */
  adjustment: number
  /** Seconds: the access link, added to every distance. */
  height: number
}

export function newCoordinate(config: CoordinateConfig): Coordinate {
  return {
    vec: new Array<number>(config.dimensionality).fill(0),
    error: config.vivaldiErrorMax,
    adjustment: 0,
    height: config.heightMin
  }
}

/** Finite numbers, in the right number of dimensions: what arrives from the wire must pass this. */
export function isValidCoordinate(c: Coordinate, config: CoordinateConfig): boolean {
  return (
    c.vec.length === config.dimensionality &&
    c.vec.every(Number.isFinite) &&
    Number.isFinite(c.error) &&
    Number.isFinite(c.adjustment) &&
    Number.isFinite(c.height) &&
    c.height >= 0
  )
}

function magnitude(v: number[]): number {
  let s = 0
  for (const x of v) s += x * x
  return Math.sqrt(s)
}

function diff(a: number[], b: number[]): number[] {
  return a.map((x, i) => x - b[i])
}

/** The distance without the adjustment terms (s): what the Vivaldi update fits. */
export function rawDistance(a: Coordinate, b: Coordinate): number {
  return magnitude(diff(a.vec, b.vec)) + a.height + b.height
}

/** Estimated RTT between two nodes (s), adjustment terms included unless that makes it negative. */
export function distance(a: Coordinate, b: Coordinate): number {
  const dist = rawDistance(a, b)
  const adjusted = dist + a.adjustment + b.adjustment
  return adjusted > 0 ? adjusted : dist
}

/** The unit vector from b to a, and the distance; a random direction when they coincide. */
function unitVectorAt(a: number[], b: number[], random: () => number): { unit: number[]; mag: number } {
  const u = diff(a, b)
  const mag = magnitude(u)
  if (mag > ZERO_THRESHOLD) return { unit: u.map(x => x / mag), mag }
  const r = u.map(() => random() - 0.5)
  const rm = magnitude(r)
  if (rm > ZERO_THRESHOLD) return { unit: r.map(x => x / rm), mag: 0 }
  // Random numbers that all came out 0.5: any axis will do.
  return { unit: r.map((_, i) => (i === 0 ? 1 : 0)), mag: 0 }
}

/** Moves `c` by `force` (s) along the line from `other`; the height takes its share of the push. */
export function applyForce(
  config: CoordinateConfig,
  c: Coordinate,
  force: number,
  other: Coordinate,
  random: () => number = Math.random
): Coordinate {
  const { unit, mag } = unitVectorAt(c.vec, other.vec, random)
  let height = c.height
  if (mag > ZERO_THRESHOLD) height = ((c.height + other.height) * force) / mag + c.height
  return {
    vec: c.vec.map((x, i) => x + unit[i] * force),
    error: c.error,
    adjustment: c.adjustment,
    height: Math.max(height, config.heightMin)
  }
}
