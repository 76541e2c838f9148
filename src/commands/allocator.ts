import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base.js'
import { daemonFlags } from '../cli/flags.js'

export default class Allocator extends BaseCommand {
  static override summary = 'Run the allocator of this server: join the cluster and host app instances on request.'
  static override description =
    'Joins the cluster through the bootstraps, announces its catalog and capacity, and prints its full multiaddrs so that other nodes can bootstrap from it. Stops gracefully on SIGINT/SIGTERM (a leave announcement first).'
  static override examples = [
    '<%= config.bin %> allocator',
    '<%= config.bin %> allocator --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW…',
    '<%= config.bin %> allocator --configfile /etc/physarum/conf.json --log-format json'
  ]

  static override flags = {
    ...daemonFlags,
    'keep-instances': Flags.boolean({
      description: 'on shutdown, leave the instances running (adopted at the next start)'
    })
  }

  async run(): Promise<void> {
    // Before the daemon's modules load: see lean-start.ts (ended by runDaemon once the daemon is up).
    ;(await import('../cli/lean-start.js')).leanStartBegin()
    const { flags } = await this.parse(Allocator)
    // Heavy modules load only when a command runs, so that --help and --version stay fast.
    const [{ setup }, { runDaemon }, { AllocatorDaemon }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/daemon.js'),
      import('../allocator/daemon.js')
    ])
    const { loaded, log, reload } = setup(flags, { role: 'allocator' })
    const cfg = loaded.config
    await runDaemon(
      async () =>
        await AllocatorDaemon.start({
          config: cfg,
          log,
          ephemeral: flags.ephemeral,
          keepInstances: flags['keep-instances'],
          configFile: loaded.file,
          adminIsRoleDefault: loaded.sources.get('Admin.Listen') === 'role',
          processMetrics: true
        }),
      log,
      { config: cfg, reload }
    )
  }
}
