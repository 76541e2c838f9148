import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'

export default class Drain extends BaseCommand {
  static override summary = "Move an allocator's instances elsewhere, then keep it in maintenance (--undo ends it)."
  static override description =
    'For each app of the allocator that has traffic, an instance is made ready on another allocator within the app\'s hard RTT first; then the local instances take no new request, finish what is in flight (up to --deadline) and stop. The allocator stays in the cluster as "draining", then "maintenance" in `physarum members`, and takes no allocation until `physarum drain --undo`, also across its restarts. An allocator on this host is asked on its own admin API; a PEER on another host through an allocator or proxy on this one, over the network, which that PEER must list in its Admin.Operators. SIGTERM is not this: it is the quick drain of a shutdown.'
  static override examples = [
    '<%= config.bin %> drain',
    '<%= config.bin %> drain --deadline 30s',
    '<%= config.bin %> drain 12D3KooW… --json',
    '<%= config.bin %> drain --undo'
  ]

  static override args = {
    peer: Args.string({
      description: 'peer ID of the allocator, here or on another host (default: the one allocator on this host)'
    })
  }

  static override flags = {
    ...configFlags,
    ...agentFlags,
    self: Flags.boolean({ description: 'the allocator on this host (the default without PEER)' }),
    deadline: Flags.string({
      description: 'how long in-flight and long-lived requests may take to finish, e.g. 30s, 5m',
      default: '5m',
      helpValue: 'DURATION'
    }),
    undo: Flags.boolean({ description: 'end the maintenance: take allocations again' }),
    json: Flags.boolean({ description: 'print JSON' })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Drain)
    if (flags.self && args.peer !== undefined) throw new UsageError('name a PEER or --self, not both')
    const [{ setup }, { askDrain, askRemoteDrain, findAllocator, formatReport }, { parseDuration }] = await Promise.all(
      [import('../cli/setup.js'), import('../cli/drain.js'), import('../util/duration.js')]
    )
    const deadlineS = parseDuration(flags.deadline)
    if (deadlineS === undefined || deadlineS > 86400)
      throw new UsageError(
        `--deadline must be a duration such as 30s, 5m or 1h (at most 24h), got ${JSON.stringify(flags.deadline)}`
      )
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const target = await findAllocator(loaded.config, args.peer, flags.agent, flags['token-file'])
    const body = flags.undo ? { undo: true } : { deadlineS }
    const report =
      target.kind === 'local'
        ? await askDrain(target, body, deadlineS * 1000)
        : await askRemoteDrain(target.via, target.peer, body, deadlineS * 1000)
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(target.peer, report))
  }
}
