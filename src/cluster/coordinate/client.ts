// This node's Vivaldi coordinate, updated from the RTT samples the failure detector
// already takes (a probe and its answer carry the peer's coordinate): a latency filter
// per peer, the Vivaldi step, the adjustment term and gravity, as Serf's coordinate/client.go.
import {
  DEFAULT_COORDINATE_CONFIG,
  MAX_FILTERED_PEERS,
  MAX_RTT_S,
  ZERO_THRESHOLD,
  type CoordinateConfig
} from './constants.js'
import { applyForce, distance, isValidCoordinate, newCoordinate, rawDistance, type Coordinate } from './coordinate.js'

export class CoordinateError extends Error {
  override name = 'CoordinateError'
}

export class CoordinateClient {
  readonly config: CoordinateConfig
  private coord: Coordinate
  private readonly origin: Coordinate
  private readonly adjustments: number[]
  private adjustmentIndex = 0
  private readonly filters = new Map<string, number[]>()
  /** Samples applied, for metrics and tests. */
  updates = 0

  constructor(
    config: Partial<CoordinateConfig> = {},
    private readonly random: () => number = Math.random
  ) {
    this.config = { ...DEFAULT_COORDINATE_CONFIG, ...config }
    this.coord = newCoordinate(this.config)
    this.origin = newCoordinate(this.config)
    this.adjustments = new Array<number>(this.config.adjustmentWindowSize).fill(0)
  }

  /** A copy of this node's coordinate. */
  get coordinate(): Coordinate {
    return { ...this.coord, vec: [...this.coord.vec] }
  }

  /** The median of the peer's last few samples (s). */
  private filter(peer: string, rttS: number): number {
    let s = this.filters.get(peer)
    if (s === undefined) {
      if (this.filters.size >= MAX_FILTERED_PEERS) {
        const oldest = this.filters.keys().next().value
        if (oldest !== undefined) this.filters.delete(oldest)
      }
      s = []
      this.filters.set(peer, s)
    }
    s.push(rttS)
    if (s.length > this.config.latencyFilterSize) s.shift()
    const sorted = [...s].sort((a, b) => a - b)
    return sorted[sorted.length >> 1]
  }

  private vivaldi(other: Coordinate, rttS: number): void {
    const dist = rawDistance(this.coord, other)
    const rtt = Math.max(rttS, ZERO_THRESHOLD)
    const wrongness = Math.abs(dist - rtt) / rtt
    const totalError = Math.max(this.coord.error + other.error, ZERO_THRESHOLD)
    const weight = this.coord.error / totalError
    const { vivaldiCE, vivaldiCC, vivaldiErrorMax } = this.config
    const error = Math.min(
      vivaldiErrorMax,
      vivaldiCE * weight * wrongness + this.coord.error * (1 - vivaldiCE * weight)
    )
    const force = vivaldiCC * weight * (rtt - dist)
    this.coord = { ...applyForce(this.config, this.coord, force, other, this.random), error }
  }

  private adjustment(other: Coordinate, rttS: number): void {
    const w = this.config.adjustmentWindowSize
    if (w === 0) return
    this.adjustments[this.adjustmentIndex] = rttS - rawDistance(this.coord, other)
    this.adjustmentIndex = (this.adjustmentIndex + 1) % w
    this.coord.adjustment = this.adjustments.reduce((a, b) => a + b, 0) / (2 * w)
  }

  private gravity(): void {
    const dist = distance(this.origin, this.coord)
    const force = -1 * Math.pow(dist / this.config.gravityRho, 2)
    this.coord = applyForce(this.config, this.coord, force, this.origin, this.random)
  }

  /**
   * Takes one RTT sample (ms) to a peer whose coordinate came with the answer. Refuses (CoordinateError) a sample or a
   * coordinate that would poison this one: negative or huge RTTs, wrong dimensions, non-finite numbers.
   */
  update(peer: string, other: Coordinate, rttMs: number): Coordinate {
    const rttS = rttMs / 1000
    if (!Number.isFinite(rttS) || rttS < 0 || rttS > MAX_RTT_S)
      throw new CoordinateError(`RTT ${rttMs} ms is out of range (0 … ${MAX_RTT_S * 1000} ms)`)
    if (!isValidCoordinate(other, this.config)) throw new CoordinateError(`coordinate of ${peer} is invalid`)
    const filtered = this.filter(peer, rttS)
    this.vivaldi(other, filtered)
    this.adjustment(other, filtered)
    this.gravity()
    if (!isValidCoordinate(this.coord, this.config)) {
      // Serf resets on the same: a coordinate gone non-finite would poison every peer that uses it.
      this.coord = newCoordinate(this.config)
      throw new CoordinateError('coordinate became invalid and was reset')
    }
    this.updates++
    return this.coordinate
  }

  /** Estimated RTT (ms) from this node to a peer's coordinate. */
  estimateTo(other: Coordinate): number {
    return distance(this.coord, other) * 1000
  }

  forget(peer: string): void {
    this.filters.delete(peer)
  }
}

/** Estimated RTT (ms) between two coordinates. */
export function estimateRttMs(a: Coordinate, b: Coordinate): number {
  return distance(a, b) * 1000
}
