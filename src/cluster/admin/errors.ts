// The admin API's error answers: one code union, one code → status table, and the class a
// route throws to answer with one of them ({"error": message, "code": CODE}).

export const ADMIN_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED: 415,
  REFUSED: 422,
  INTERNAL: 500,
  /** A peer this agent was asked to reach (physarum drain PEER) could not be, or sent no valid answer. */
  UNREACHABLE: 502,
  TIMEOUT: 504
} as const

export type AdminErrorCode = keyof typeof ADMIN_STATUS

export class AdminError extends Error {
  override name = 'AdminError'
  constructor(
    readonly code: AdminErrorCode,
    message: string
  ) {
    super(message)
  }

  get status(): number {
    return ADMIN_STATUS[this.code]
  }
}

/** The JSON body of an error answer. */
export function adminErrorBody(code: AdminErrorCode, message: string): { error: string; code: AdminErrorCode } {
  return { error: message, code }
}
