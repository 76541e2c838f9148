import { Args } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'
import { APP_NAME_PATTERN } from '../config/schema.js'
import { parseHostPort } from '../util/http.js'

export default class Deregister extends BaseCommand {
  static override summary =
    'Withdraw an instance registered with a local agent (every one of the app without HOST:PORT).'
  static override description =
    'Asks every local agent (or the one --agent names) to drop the registration: it is no longer announced, and new requests for it go elsewhere.'
  static override examples = [
    '<%= config.bin %> deregister billing 127.0.0.1:9000',
    '<%= config.bin %> deregister billing'
  ]

  static override args = {
    app: Args.string({ description: 'app name', required: true }),
    address: Args.string({ description: 'HOST:PORT of the instance (default: every registered one of the app)' })
  }

  static override flags = { ...configFlags, ...agentFlags }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Deregister)
    if (!new RegExp(APP_NAME_PATTERN).test(args.app))
      throw new UsageError(
        `${JSON.stringify(args.app)} is not a valid app name (lowercase letters, digits, '.', '_', '-')`
      )
    if (args.address !== undefined && (parseHostPort(args.address)?.port ?? 0) < 1)
      throw new UsageError(`${JSON.stringify(args.address)} is not HOST:PORT`)
    const [{ setup }, { agentRefs, errorOf, everyAgent }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/admin-client.js')
    ])
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const body = { app: args.app, ...(args.address !== undefined ? { address: args.address } : {}) }
    const answers = await everyAgent(agentRefs(loaded.config, flags), 'DELETE', '/v1/registrations', body)
    const ok = answers.filter(a => a.answer.status === 200)
    if (ok.length === 0) {
      const refused = answers.find(a => a.answer.status !== 404) ?? answers[0]
      throw new UsageError(`agent at ${refused.ref.admin}: ${errorOf(refused.answer)}`, 1)
    }
    for (const a of ok)
      for (const v of (a.answer.body as { deregistered: Array<{ app: string; address: string; id: string }> })
        .deregistered)
        process.stdout.write(`deregistered ${v.app} at ${v.address} (${v.id}) from ${a.ref.admin}\n`)
  }
}
