// Vivaldi network coordinates (Serf's coordinate/ package, in TypeScript): estimate the
// RTT to any member from its coordinate, without probing it.
export { DEFAULT_COORDINATE_CONFIG, type CoordinateConfig } from './constants.js'
export { type Coordinate, distance, isValidCoordinate, newCoordinate } from './coordinate.js'
export { CoordinateClient, CoordinateError, estimateRttMs } from './client.js'
