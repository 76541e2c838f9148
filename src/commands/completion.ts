import { Args } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'

export default class Completion extends BaseCommand {
  static override summary = 'Print the shell completion script for bash or zsh.'
  static override description =
    'Completes the commands, their flags and the fixed values of flags and arguments (roles, shells). Generated from the commands of this very executable, so it always matches it. zsh runs the bash script through its bashcompinit.'
  static override examples = [
    'source <(<%= config.bin %> completion bash)',
    '<%= config.bin %> completion bash > /etc/bash_completion.d/<%= config.bin %>',
    "echo 'source <(<%= config.bin %> completion zsh)' >> ~/.zshrc"
  ]

  static override args = {
    shell: Args.string({
      description: 'which shell (default: the one $SHELL names)',
      options: ['bash', 'zsh']
    })
  }

  async run(): Promise<void> {
    const { args } = await this.parse(Completion)
    const shell = args.shell ?? /(bash|zsh)$/.exec(process.env.SHELL ?? '')?.[1]
    if (shell === undefined)
      throw new UsageError(`name the shell: ${this.config.bin} completion bash|zsh ($SHELL is not bash or zsh)`)
    const { bashCompletion, zshCompletion } = await import('../cli/completion.js')
    const commands = this.config.commands.map(c => ({
      id: c.id,
      hidden: c.hidden,
      flags: Object.entries(c.flags).map(([name, f]) => ({
        name,
        char: f.char,
        takesValue: f.type === 'option',
        options: f.type === 'option' ? f.options : undefined
      })),
      argOptions: Object.values(c.args)[0]?.options
    }))
    process.stdout.write((shell === 'zsh' ? zshCompletion : bashCompletion)(this.config.bin, commands))
  }
}
