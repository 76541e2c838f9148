import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { daemonFlags } from '../cli/flags.js'

export default class Proxy extends BaseCommand {
  static override summary =
    'Run a local HTTP entrypoint: GET http://127.0.0.1:PORT/<app>/<path> reaches the nearest instance of <app>.'
  static override description =
    'Client mode: `physarum proxy --port 1234`. Server mode also announces a user-run instance of an app: `physarum proxy --port 1234 --app NAME --address HOST:PORT`. The original positional form `physarum proxy 1234 [APP ADDRESS]` is accepted too.'
  static override examples = [
    '<%= config.bin %> proxy --port 1234',
    '<%= config.bin %> proxy --port 1234 --app hello-world-server --address 127.0.0.1:8080',
    '<%= config.bin %> proxy 1234',
    '<%= config.bin %> proxy --port 8443 --tls-cert /etc/physarum/tls.crt --tls-key /etc/physarum/tls.key'
  ]

  static override args = {
    port: Args.integer({ description: 'HTTP port (same as --port)', required: false, min: 0, max: 65535 }),
    app: Args.string({ description: 'app to serve (same as --app)', required: false }),
    address: Args.string({ description: 'HOST:PORT of the app instance (same as --address)', required: false })
  }

  static override flags = {
    ...daemonFlags,
    port: Flags.integer({
      char: 'p',
      description: 'HTTP entrypoint port (default: Proxy.Port, 1234)',
      min: 0,
      max: 65535
    }),
    bind: Flags.string({ description: 'HTTP entrypoint address (default: Proxy.Bind, 127.0.0.1)' }),
    app: Flags.string({ description: 'server mode: announce an instance of this catalog app' }),
    address: Flags.string({
      description: "server mode: HOST:PORT of the user-run instance (default 127.0.0.1:<the app's Port>)",
      helpValue: 'HOST:PORT'
    }),
    'tls-cert': Flags.string({
      description: 'HTTPS (and h2 by ALPN) on the entrypoint: PEM certificate file (Proxy.Tls.CertFile)',
      helpValue: 'FILE'
    }),
    'tls-key': Flags.string({
      description: 'its PEM private key, mode 0600 (Proxy.Tls.KeyFile)',
      helpValue: 'FILE'
    })
  }

  async run(): Promise<void> {
    // Before the daemon's modules load: see lean-start.ts (ended by runDaemon once the daemon is up).
    ;(await import('../cli/lean-start.js')).leanStartBegin()
    const { args, flags } = await this.parse(Proxy)
    const [{ setup }, { serverMode }, { runDaemon }, { ProxyDaemon }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/server-mode.js'),
      import('../cli/daemon.js'),
      import('../proxy/daemon.js')
    ])
    if (args.port !== undefined && flags.port !== undefined && args.port !== flags.port)
      throw new UsageError(`port given twice: ${args.port} and --port ${flags.port}`)
    // The original positional form (`physarum proxy 1234`) is --port too.
    const given = flags.port ?? args.port
    const { loaded, log, reload } = setup(flags, {
      role: 'proxy',
      serverMode: (flags.app ?? args.app) !== undefined,
      ...(given !== undefined ? { port: given } : {})
    })
    const cfg = loaded.config
    const { app, target } = serverMode(cfg, flags.app ?? args.app, flags.address ?? args.address)
    await runDaemon(
      async () =>
        await ProxyDaemon.start({
          config: cfg,
          log,
          port: cfg.Proxy.Port,
          bind: cfg.Proxy.Bind,
          app,
          address: target,
          ephemeral: flags.ephemeral,
          configFile: loaded.file,
          adminIsRoleDefault: loaded.sources.get('Admin.Listen') === 'role',
          processMetrics: true
        }),
      log,
      { config: cfg, reload }
    )
  }
}
