// Tuning of the Vivaldi network coordinates (Dabek et al., "Vivaldi: A Decentralized Network
// Coordinate System", SIGCOMM 2004; Ledlie et al., "Network Coordinates in the Wild", NSDI
// 2007), with the defaults Serf's coordinate/config.go ships and why. Times are in seconds,
// as there, so that the published values carry over unchanged.

export interface CoordinateConfig {
  /**
   * Dimensions of the Euclidean part. Serf uses 8: more dimensions fit a real topology better
   * (NSDI 2007 found little gain past a few), at 8 numbers per coordinate on the wire.
   */
  dimensionality: number
  /**
   * Highest (and starting) error estimate; a coordinate starts out claiming it knows nothing, so that
   * its first samples move it a lot (Serf: 1.5).
   */
  vivaldiErrorMax: number
  /** How much one sample changes the error estimate, c_e in the Vivaldi paper (Serf: 0.25). */
  vivaldiCE: number
  /** How much one sample moves the coordinate, c_c in the Vivaldi paper (Serf: 0.25). */
  vivaldiCC: number
  /**
   * Samples in the adjustment term's window: a per-node offset, the mean of the last samples' error, that
   * absorbs what no Euclidean embedding can (a slow host, a long first hop). 0 turns it off (Serf: 20).
   */
  adjustmentWindowSize: number
  /**
   * Least height (s). The height models the access link (NSDI 2007, "height vectors") and must stay above 0 for the
   * force to push along it (Serf: 10 µs).
   */
  heightMin: number
  /**
   * RTT samples per peer whose median feeds the update: one outlier (a GC pause, a retransmit) must not throw a
   * coordinate away (NSDI 2007's latency filter; Serf: 3).
   */
  latencyFilterSize: number
  /**
   * Gravity pulls coordinates towards the origin with (distance / rho)², so that the whole system does not drift
   * away over time (NSDI 2007; Serf: 150 s, far larger than any real RTT so it only acts on drift).
   */
  gravityRho: number
}

export const DEFAULT_COORDINATE_CONFIG: Readonly<CoordinateConfig> = Object.freeze({
  dimensionality: 8,
  vivaldiErrorMax: 1.5,
  vivaldiCE: 0.25,
  vivaldiCC: 0.25,
  adjustmentWindowSize: 20,
  heightMin: 10e-6,
  latencyFilterSize: 3,
  gravityRho: 150.0
})

/** Below this (s) two coordinates are one point: a random direction is taken to separate them (Serf's value). */
export const ZERO_THRESHOLD = 1.0e-6

/** An RTT sample above this (s) is an error, not a distance (Serf refuses the same). */
export const MAX_RTT_S = 10

/** Peers whose latency filter is kept: the rest are dropped oldest first, so memory stays flat in N. */
export const MAX_FILTERED_PEERS = 1024
