import { Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { configFlags, readAgentFlags } from '../cli/flags.js'

export default class Members extends BaseCommand {
  static override summary = 'Show the members of the cluster.'
  static override description =
    'Asks the local agent (an allocator or proxy on this host) for its member table; when none answers, joins the cluster briefly through the bootstraps as an observer.'
  static override examples = [
    '<%= config.bin %> members',
    '<%= config.bin %> members --json',
    '<%= config.bin %> members --status alive --role allocator',
    '<%= config.bin %> members --bootstrap /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW… --wait 3'
  ]

  static override flags = {
    ...configFlags,
    ...readAgentFlags,
    wait: Flags.string({
      description: 'when joining through the bootstraps, how long to let the view settle (seconds)',
      default: '2'
    }),
    json: Flags.boolean({ description: 'print JSON' }),
    status: Flags.string({
      description: 'only members whose status matches this regular expression',
      helpValue: 'REGEX'
    }),
    role: Flags.string({ description: 'only members with this role (allocator, proxy)' }),
    app: Flags.string({ description: 'only members that list or host this app' }),
    detailed: Flags.boolean({ description: 'every multiaddr, version and last-seen time' })
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Members)
    const waitS = Number(flags.wait)
    if (!Number.isFinite(waitS) || waitS < 0 || waitS > 600)
      throw new UsageError(`--wait must be a number of seconds between 0 and 600, got ${JSON.stringify(flags.wait)}`)
    if (flags.status !== undefined) {
      try {
        void new RegExp(flags.status)
      } catch {
        throw new UsageError(`--status ${JSON.stringify(flags.status)} is not a valid regular expression`)
      }
    }
    const [{ setup }, { agentsToAsk, byJoining, fromFirstAgent }, { filterMembers, formatMembers }] = await Promise.all(
      [import('../cli/setup.js'), import('../cli/members/client.js'), import('../cli/members/format.js')]
    )
    const { loaded, log } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const cfg = loaded.config
    const agents = agentsToAsk(cfg, flags.agent)
    const first = await fromFirstAgent(agents)
    const tried = first.tried
    let rows = first.rows
    if (rows === undefined) {
      if (cfg.Bootstraps.length === 0) {
        throw new UsageError(
          `${tried.join('; ')}, and no bootstraps are configured: run this on a host with an allocator or proxy, or point it at a cluster with --agent HOST:PORT, --bootstrap MULTIADDR or PHYSARUM_BOOTSTRAPS`
        )
      }
      rows = await byJoining(cfg, log, waitS * 1000)
      if (rows.length === 0)
        throw new UsageError(
          `no member answered through the bootstraps (${cfg.Bootstraps.join(', ')}) within ${waitS} s; check the addresses and the PSK`,
          1
        )
    }
    rows = filterMembers(rows, { status: flags.status, role: flags.role, app: flags.app })
    process.stdout.write(flags.json ? JSON.stringify(rows, null, 2) + '\n' : formatMembers(rows, flags.detailed))
  }
}
