import { BaseCommand, UsageError } from '../../cli/base.js'
import { serviceArgs, serviceFlags, serviceTarget } from '../../cli/service.js'

export default class ServiceRemove extends BaseCommand {
  static override summary = 'Stop, disable and remove the systemd unit of the allocator or of a proxy.'
  static override description =
    'systemctl disable --now, then the unit file goes (the proxy template only once no other proxy instance is enabled). Refused where systemd does not run, unless --root.'
  static override examples = ['<%= config.bin %> service remove', '<%= config.bin %> service remove proxy --port 1235']

  static override args = serviceArgs
  static override flags = serviceFlags

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ServiceRemove)
    const target = serviceTarget(args.role, flags.port, 'allocator')
    const [{ remove, ServiceError }, { selfCommand }] = await Promise.all([
      import('../../service/install.js'),
      import('../../util/self.js')
    ])
    try {
      for (const line of remove(target, { root: flags.root, exec: selfCommand() })) this.log(line)
    } catch (err) {
      if (err instanceof ServiceError) throw new UsageError(err.message)
      throw err
    }
  }
}
