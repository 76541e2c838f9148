import { Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../../cli/base.js'
import { serviceArgs, serviceFlags, serviceTarget } from '../../cli/service.js'

export default class ServiceStatus extends BaseCommand {
  static override summary = 'Show the systemd units of physarum: installed, enabled, active, and what they run.'
  static override description =
    'Without an argument: the allocator and every enabled proxy instance. Refused where systemd does not run, unless --root (then ACTIVE is "-").'
  static override examples = [
    '<%= config.bin %> service status',
    '<%= config.bin %> service status proxy --port 1235',
    '<%= config.bin %> service status --json'
  ]

  static override args = serviceArgs
  static override flags = { ...serviceFlags, json: Flags.boolean({ description: 'print JSON' }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ServiceStatus)
    const target = serviceTarget(args.role, flags.port, undefined)
    const [{ status, formatStatus, ServiceError }, { selfCommand }] = await Promise.all([
      import('../../service/install.js'),
      import('../../util/self.js')
    ])
    try {
      const rows = status(target, { root: flags.root, exec: selfCommand() })
      process.stdout.write(flags.json ? JSON.stringify(rows, null, 2) + '\n' : formatStatus(rows))
    } catch (err) {
      if (err instanceof ServiceError) throw new UsageError(err.message)
      throw err
    }
  }
}
