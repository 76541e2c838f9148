import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base.js'
import { daemonFlags, toConfigFlags } from '../../cli/flags.js'
import type { Role } from '../../config/defaults.js'

// Inline, not imported: every command module loads at start-up, defaults.ts and its imports need not.
const ROLES = ['allocator', 'proxy', 'observer'] as const satisfies readonly Role[]

export default class ConfigShow extends BaseCommand {
  static override summary =
    'Print the configuration a daemon would run with (defaults ← role defaults ← file ← environment ← flags).'
  static override description =
    "The daemon flags (--listen, --keyfile, --ephemeral, --admin, and the proxy's --port and --bind) apply as they would to that daemon; --role picks whose defaults (Listen, KeyFile, Admin.Listen) are shown."
  static override examples = [
    '<%= config.bin %> config show',
    '<%= config.bin %> config show --sources',
    '<%= config.bin %> config show --sources --role proxy --port 1235',
    '<%= config.bin %> config show --json --configfile /etc/physarum/conf.json'
  ]

  static override flags = {
    ...daemonFlags,
    role: Flags.option({
      options: ROLES,
      default: 'allocator' as const,
      description:
        "whose config: an allocator's, a proxy's, or an observer's (`members` joining through the bootstraps)"
    })(),
    port: Flags.integer({
      char: 'p',
      description: "the proxy's HTTP entrypoint port (Proxy.Port; a proxy's KeyFile default depends on it)",
      min: 0,
      max: 65535,
      helpValue: 'PORT'
    }),
    bind: Flags.string({ description: "the proxy's HTTP entrypoint address (Proxy.Bind)", helpValue: 'HOST' }),
    sources: Flags.boolean({
      description: 'say where each value came from (default, default for the role, file, env, flag)'
    }),
    json: Flags.boolean({ description: 'print JSON' }),
    'show-secrets': Flags.boolean({ description: 'print the PSK instead of hiding it' })
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(ConfigShow)
    const [{ loadConfig }, { renderConfig }] = await Promise.all([
      import('../../config/load.js'),
      import('../../config/show.js')
    ])
    const loaded = loadConfig({ role: flags.role, flags: toConfigFlags(flags) })
    process.stdout.write(
      renderConfig(loaded, { sources: flags.sources, json: flags.json, showSecrets: flags['show-secrets'] })
    )
  }
}
