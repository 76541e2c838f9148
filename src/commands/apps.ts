import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'

export default class Apps extends BaseCommand {
  static override summary = 'Show the apps of the cluster: where each may run, its instances and its scale.'
  static override description =
    "Asks the local agent (as members does) for every app any member's catalog lists or hosts: the allocators that may run it, its instances with their host, address, state, requests in flight and the RTT to their host from here, and its scale (physarum scale). With APP: that app alone (an unknown one is an error)."
  static override examples = [
    '<%= config.bin %> apps',
    '<%= config.bin %> apps hello-world-server',
    '<%= config.bin %> apps --json'
  ]

  static override args = { app: Args.string({ description: 'one app in detail' }) }

  static override flags = {
    ...configFlags,
    agent: agentFlags.agent,
    json: Flags.boolean({ description: 'print JSON (the admin API’s /v1/apps or /v1/apps/APP)' })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Apps)
    const [{ setup }, { agentRefs, errorOf, firstAgent }, { formatApp, formatApps }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/admin-client.js'),
      import('../cli/apps/format.js')
    ])
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const path = args.app === undefined ? '/v1/apps' : `/v1/apps/${encodeURIComponent(args.app)}`
    const { ref, answer } = await firstAgent(agentRefs(loaded.config, flags), 'GET', path)
    if (answer.status !== 200)
      throw new UsageError(answer.status === 404 ? errorOf(answer) : `agent at ${ref.admin}: ${errorOf(answer)}`, 1)
    if (flags.json) process.stdout.write(JSON.stringify(answer.body, null, 2) + '\n')
    else if (args.app === undefined) process.stdout.write(formatApps(answer.body as Parameters<typeof formatApps>[0]))
    else process.stdout.write(formatApp(answer.body as Parameters<typeof formatApp>[0]))
  }
}
