// The arguments and flags shared by `physarum service install|remove|status`, and the checks between them. Light on
// purpose: command modules load at start-up, the work (../service/install.ts) only when a command runs.
import { Args, Flags } from '@oclif/core'
import { UsageError } from './base.js'

export const serviceArgs = {
  role: Args.string({
    description: 'which unit: the allocator, or a proxy (the template physarum-proxy@.service, one instance per port)',
    options: ['allocator', 'proxy']
  })
}

export const serviceFlags = {
  port: Flags.integer({
    char: 'p',
    description: "a proxy's HTTP port (the unit physarum-proxy@PORT; default 1234, Proxy.Port's default)",
    min: 1,
    max: 65535,
    helpValue: 'PORT'
  }),
  root: Flags.string({
    description:
      'write into this directory instead of / (a test or image root): unit files and enable links only, no systemctl',
    helpValue: 'DIR'
  })
}

/** The proxy port the units use when none is given: Proxy.Port's default (not imported: see above). */
const DEFAULT_PROXY_PORT = 1234

type Target = { role: 'allocator' | 'proxy'; port: number }

/** The unit the arguments name; with a fallback role, always one. */
export function serviceTarget(role: string | undefined, port: number | undefined, fallback: 'allocator'): Target
export function serviceTarget(
  role: string | undefined,
  port: number | undefined,
  fallback: undefined
): Target | undefined
export function serviceTarget(
  role: string | undefined,
  port: number | undefined,
  fallback: 'allocator' | undefined
): Target | undefined {
  const r = (role ?? fallback) as 'allocator' | 'proxy' | undefined
  if (port !== undefined && r !== 'proxy')
    throw new UsageError('--port is for a proxy: physarum service … proxy --port N')
  if (r === undefined) return undefined
  return { role: r, port: r === 'proxy' ? (port ?? DEFAULT_PROXY_PORT) : 0 }
}
