import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'

export default class Reload extends BaseCommand {
  static override summary = 'Ask a local agent to re-read its configuration, as SIGHUP does.'
  static override description =
    "The agent re-reads its config file, environment and flags: a valid config takes effect at once (catalog, latency requirements, limits, log level); an invalid one is refused in one line and the running one stays (exit 1). Without --agent: the first of this host's daemons (allocators first)."
  static override examples = ['<%= config.bin %> reload', '<%= config.bin %> reload --agent 127.0.0.1:7702']

  static override flags = { ...configFlags, ...agentFlags }

  async run(): Promise<void> {
    const { flags } = await this.parse(Reload)
    const [{ setup }, { agentRefs, errorOf, firstAgent }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/admin-client.js')
    ])
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const { ref, answer } = await firstAgent(agentRefs(loaded.config, flags), 'POST', '/v1/reload', {})
    if (answer.status !== 200) throw new UsageError(`agent at ${ref.admin}: ${errorOf(answer)}`, 1)
    process.stdout.write(`${ref.role ?? 'agent'} ${ref.admin}: ${(answer.body as { message: string }).message}\n`)
  }
}
