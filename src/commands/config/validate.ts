import { Args } from '@oclif/core'
import { BaseCommand, UsageError } from '../../cli/base.js'

export default class ConfigValidate extends BaseCommand {
  static override summary = 'Check a config file; exit 0 when valid, 2 with every error otherwise.'
  static override examples = ['<%= config.bin %> config validate /etc/physarum/conf.json']
  static override args = {
    file: Args.string({ description: 'config file (default: the one physarum would load)', required: false })
  }

  async run(): Promise<void> {
    const { args } = await this.parse(ConfigValidate)
    const { defaultConfigFile, validateFile } = await import('../../config/load.js')
    const file = args.file ?? defaultConfigFile()
    if (file === undefined)
      throw new UsageError('no config file given and none found at ./conf/conf.json or /etc/physarum/conf.json')
    const errors = validateFile(file)
    if (errors.length > 0) {
      for (const e of errors)
        process.stderr.write(`physarum: ${e.startsWith('config file') ? e : `config file ${file}: ${e}`}\n`)
      this.exit(2)
    }
    process.stdout.write(`${file}: valid\n`)
  }
}
