import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base.js'
import { configFlags, toConfigFlags } from '../../cli/flags.js'

export default class ConfigShow extends BaseCommand {
  static override summary = 'Print the effective configuration (defaults ← file ← environment ← flags).'
  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --sources', '<%= config.bin %> config show --json --configfile /etc/physarum/conf.json']

  static override flags = {
    ...configFlags,
    listen: Flags.string({ char: 'l', multiple: true, description: 'multiaddr to listen on (repeatable)', helpValue: 'MULTIADDR' }),
    keyfile: Flags.string({ description: 'identity key file', helpValue: 'PATH' }),
    admin: Flags.string({ description: 'admin API address', helpValue: 'HOST:PORT' }),
    sources: Flags.boolean({ description: 'say where each value came from (default, file, env, flag)' }),
    json: Flags.boolean({ description: 'print JSON' }),
    'show-secrets': Flags.boolean({ description: 'print the PSK instead of hiding it' })
  }

  async run (): Promise<void> {
    const { flags } = await this.parse(ConfigShow)
    const [{ loadConfig }, { renderConfig }] = await Promise.all([import('../../config/load.js'), import('../../config/show.js')])
    const loaded = loadConfig({ flags: toConfigFlags(flags) })
    process.stdout.write(renderConfig(loaded, { sources: flags.sources, json: flags.json, showSecrets: flags['show-secrets'] }))
  }
}
