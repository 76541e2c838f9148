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
    wait: Flags.string({
      description: 'when joining through the bootstraps (no local agent), how long to let the view settle (seconds)',
      default: '2'
    }),
    json: Flags.boolean({ description: 'print JSON (the admin API’s /v1/apps or /v1/apps/APP)' })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Apps)
    const waitS = Number(flags.wait)
    if (!Number.isFinite(waitS) || waitS < 0 || waitS > 600)
      throw new UsageError(`--wait must be a number of seconds between 0 and 600, got ${JSON.stringify(flags.wait)}`)
    const [{ setup }, { agentRefs, errorOf, firstAgent }, { formatApp, formatApps }, { joinedApps }] =
      await Promise.all([
        import('../cli/setup.js'),
        import('../cli/admin-client.js'),
        import('../cli/apps/format.js'),
        import('../cli/apps/join.js')
      ])
    const { loaded, log } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const path = args.app === undefined ? '/v1/apps' : `/v1/apps/${encodeURIComponent(args.app)}`
    let body: unknown
    try {
      const { ref, answer } = await firstAgent(agentRefs(loaded.config, flags), 'GET', path)
      if (answer.status !== 200)
        throw new UsageError(answer.status === 404 ? errorOf(answer) : `agent at ${ref.admin}: ${errorOf(answer)}`, 1)
      body = answer.body
    } catch (err) {
      // No local agent: through the bootstraps, as members does.
      if (!(err instanceof UsageError) || !/no agent answers/.test(err.message)) throw err
      if (loaded.config.Bootstraps.length === 0 || flags.agent !== undefined) throw err
      body = await joinedApps(loaded.config, log, waitS * 1000, args.app)
    }
    if (flags.json) process.stdout.write(JSON.stringify(body, null, 2) + '\n')
    else if (args.app === undefined) process.stdout.write(formatApps(body as Parameters<typeof formatApps>[0]))
    else process.stdout.write(formatApp(body as Parameters<typeof formatApp>[0]))
  }
}
