import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base.js'

export default class ConfigInit extends BaseCommand {
  static override summary = 'Write a working config with a freshly generated PSK (mode 0600).'
  static override description =
    'Copy the file to every host of the cluster (it holds the shared PSK), then add the multiaddr of a first allocator to Bootstraps.'
  static override examples = [
    '<%= config.bin %> config init --output /etc/physarum/conf.json',
    '<%= config.bin %> config init --output - > conf.json',
    '<%= config.bin %> config init --output ./conf.json --tls'
  ]

  static override flags = {
    output: Flags.string({
      char: 'o',
      description: `where to write it ("-" for stdout)`,
      default: '/etc/physarum/conf.json',
      helpValue: 'FILE'
    }),
    force: Flags.boolean({ char: 'f', description: 'overwrite an existing file' }),
    bootstrap: Flags.string({
      char: 'b',
      multiple: true,
      description: 'bootstrap multiaddr to put in the file (repeatable)',
      helpValue: 'MULTIADDR'
    }),
    tls: Flags.boolean({
      description:
        'also write a self-signed certificate (tls.crt) and key (tls.key, 0600) for localhost beside the file, and set Proxy.Tls to them (needs openssl)'
    })
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(ConfigInit)
    const { writeInitialConfig } = await import('../../config/init.js')
    const written = writeInitialConfig({
      output: flags.output,
      force: flags.force,
      bootstraps: flags.bootstrap ?? [],
      tls: flags.tls
    })
    if (written !== undefined)
      process.stderr.write(`wrote ${written} (mode 0600); copy it to every host of the cluster\n`)
    if (written !== undefined && flags.tls)
      process.stderr.write(
        `wrote a self-signed certificate for localhost and its key (mode 0600) beside it: tls.crt, tls.key\n`
      )
  }
}
