import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'
import { parseHostPort } from '../util/http.js'

export default class Register extends BaseCommand {
  static override summary = 'Register an instance that you run with the local agent, or refresh its TTL.'
  static override description =
    'The agent (an allocator or proxy on this host) health-checks the instance, announces it while the check passes, and serves forwarded requests for it; with --ttl it is withdrawn unless refreshed (--refresh, or registering again) within the TTL. physarum deregister withdraws it.'
  static override examples = [
    '<%= config.bin %> register billing 127.0.0.1:9000',
    '<%= config.bin %> register billing 127.0.0.1:9000 --ttl 30s --check /health --interval 5s',
    '<%= config.bin %> register cache 127.0.0.1:6379 --check tcp',
    '<%= config.bin %> register billing 127.0.0.1:9000 --refresh'
  ]

  static override args = {
    app: Args.string({ description: 'app name', required: true }),
    address: Args.string({
      description: 'HOST:PORT of the instance (with --refresh: every one of the app if left out)'
    })
  }

  static override flags = {
    ...configFlags,
    ...agentFlags,
    ttl: Flags.string({
      description: 'withdrawn unless refreshed within this long (e.g. 30s, 2m)',
      helpValue: 'DURATION'
    }),
    check: Flags.string({
      description: "health check: an HTTP path (/health) or 'tcp' (default: the catalog's Health of the app, else /)",
      helpValue: '/PATH|tcp'
    }),
    interval: Flags.string({ description: 'between health checks (e.g. 5s; default 2s)', helpValue: 'DURATION' }),
    protocol: Flags.string({
      description: "what the instance speaks (default: the catalog's Protocol of the app, else http1)",
      options: ['http1', 'h2c', 'grpc']
    }),
    refresh: Flags.boolean({ description: 'only refresh the TTL of an existing registration (a TTL pass)' }),
    json: Flags.boolean({ description: "print the agent's answer as JSON" })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Register)
    const [{ setup }, { agentRefs, errorOf, everyAgent, firstAgent }, { parseDuration }, { APP_NAME_PATTERN }] =
      await Promise.all([
        import('../cli/setup.js'),
        import('../cli/admin-client.js'),
        import('../util/duration.js'),
        import('../config/schema.js')
      ])
    if (!new RegExp(APP_NAME_PATTERN).test(args.app))
      throw new UsageError(
        `${JSON.stringify(args.app)} is not a valid app name (lowercase letters, digits, '.', '_', '-')`
      )
    const duration = (name: string, v: string | undefined): number | undefined => {
      if (v === undefined) return undefined
      const s = parseDuration(v)
      if (s === undefined || s <= 0)
        throw new UsageError(`--${name} ${JSON.stringify(v)} is not a duration (e.g. 30s, 500ms, 2m)`)
      return s
    }
    if (args.address !== undefined && (parseHostPort(args.address)?.port ?? 0) < 1)
      throw new UsageError(`${JSON.stringify(args.address)} is not HOST:PORT`)
    const ttlS = duration('ttl', flags.ttl)
    const intervalS = duration('interval', flags.interval)
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const refs = agentRefs(loaded.config, flags)

    if (flags.refresh) {
      if (
        flags.check !== undefined ||
        flags.interval !== undefined ||
        flags.ttl !== undefined ||
        flags.protocol !== undefined
      )
        throw new UsageError('--refresh takes no --ttl, --check, --interval or --protocol: it only restarts the TTL')
      const body = { app: args.app, ...(args.address !== undefined ? { address: args.address } : {}) }
      const answers = await everyAgent(refs, 'PUT', '/v1/registrations/refresh', body)
      const ok = answers.filter(a => a.answer.status === 200)
      if (flags.json)
        process.stdout.write(
          JSON.stringify(
            ok.map(a => a.answer.body),
            null,
            2
          ) + '\n'
        )
      if (ok.length === 0) {
        const refused = answers.find(a => a.answer.status !== 404) ?? answers[0]
        throw new UsageError(`agent at ${refused.ref.admin}: ${errorOf(refused.answer)}`, 1)
      }
      if (!flags.json)
        for (const a of ok)
          for (const v of (a.answer.body as { refreshed: View[] }).refreshed)
            process.stdout.write(`refreshed ${v.app} at ${v.address} on ${a.ref.admin} (TTL ${v.ttlS ?? '-'} s)\n`)
      return
    }

    if (args.address === undefined) throw new UsageError('register needs HOST:PORT of the instance (see --help)')
    let check: Record<string, unknown> | undefined
    if (flags.check !== undefined) {
      if (flags.check === 'tcp') check = { tcp: true }
      else if (flags.check.startsWith('/')) check = { http: flags.check }
      else throw new UsageError(`--check ${JSON.stringify(flags.check)} is neither an HTTP path (/health) nor 'tcp'`)
    }
    if (intervalS !== undefined) check = { ...check, intervalS }
    const body = {
      app: args.app,
      address: args.address,
      ...(check !== undefined ? { check } : {}),
      ...(flags.protocol !== undefined ? { protocol: flags.protocol } : {}),
      ...(ttlS !== undefined ? { ttlS } : {})
    }
    const { ref, answer } = await firstAgent(refs, 'POST', '/v1/registrations', body)
    if (answer.status !== 200) throw new UsageError(`agent at ${ref.admin}: ${errorOf(answer)}`, 1)
    const v = answer.body as View
    if (flags.json) {
      process.stdout.write(JSON.stringify(v, null, 2) + '\n')
      return
    }
    const state = v.announced ? 'passing, announced' : `${v.health}, not announced until its check passes`
    process.stdout.write(
      `registered ${v.app} at ${v.address} with ${ref.role ?? 'the agent'} ${ref.admin} as ${v.id}` +
        ` (check ${v.check} every ${v.intervalS} s${v.ttlS !== null ? `, TTL ${v.ttlS} s` : ''}): ${state}\n`
    )
  }
}

interface View {
  id: string
  app: string
  address: string
  health: string
  announced: boolean
  check: string
  intervalS: number
  ttlS: number | null
}
