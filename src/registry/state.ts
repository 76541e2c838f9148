// A registration's health and TTL as a pure state machine, tested alone: a check's result
// moves it between pending (never passed yet), passing and critical; only a passing one is
// announced; a TTL that lapses without a refresh ends the registration.

export type Health = 'pending' | 'passing' | 'critical'

export interface RegistrationState {
  health: Health
  /** Failed checks in a row. */
  failures: number
  /** When the TTL lapses (ms since the epoch); none: no TTL, it lasts until deregistered. */
  expiresAt?: number
}

export function initialState(now: number, ttlMs?: number): RegistrationState {
  return { health: 'pending', failures: 0, ...(ttlMs !== undefined ? { expiresAt: now + ttlMs } : {}) }
}

/**
 * After one check: a pass makes it passing at once (an instance is used as soon as it answers); `threshold` failures
 * in a row make it critical (one slow answer does not withdraw an instance).
 */
export function afterCheck(s: RegistrationState, ok: boolean, threshold: number): RegistrationState {
  if (ok) return { ...s, health: 'passing', failures: 0 }
  const failures = s.failures + 1
  return { ...s, failures, health: failures >= threshold ? 'critical' : s.health }
}

/** A refresh (TTL pass): the TTL starts again from now; the health stays what the checks say. */
export function refreshed(s: RegistrationState, now: number, ttlMs: number | undefined): RegistrationState {
  return ttlMs === undefined ? s : { ...s, expiresAt: now + ttlMs }
}

export function lapsed(s: RegistrationState, now: number): boolean {
  return s.expiresAt !== undefined && now >= s.expiresAt
}

/** Whether the instance is announced and gets requests. */
export function announced(s: RegistrationState, now: number): boolean {
  return s.health === 'passing' && !lapsed(s, now)
}
