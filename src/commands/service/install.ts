import { BaseCommand, UsageError } from '../../cli/base.js'
import { serviceArgs, serviceFlags, serviceTarget } from '../../cli/service.js'

export default class ServiceInstall extends BaseCommand {
  static override summary = 'Install and start the systemd unit of the allocator or of a proxy for this executable.'
  static override description =
    'Writes physarum-allocator.service (or the template physarum-proxy@.service) into /etc/systemd/system with an ExecStart that runs this very executable, then enables and starts it (systemctl enable --now). Refused where systemd does not run, unless --root. The units read /etc/physarum/conf.json and keep their identity in /var/lib/physarum.'
  static override examples = [
    '<%= config.bin %> service install',
    '<%= config.bin %> service install proxy --port 1235',
    '<%= config.bin %> service install allocator --root /tmp/image-root'
  ]

  static override args = serviceArgs
  static override flags = serviceFlags

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ServiceInstall)
    const target = serviceTarget(args.role, flags.port, 'allocator')
    const [{ install, ServiceError }, { selfCommand }] = await Promise.all([
      import('../../service/install.js'),
      import('../../util/self.js')
    ])
    try {
      for (const line of install(target, { root: flags.root, exec: selfCommand() })) this.log(line)
    } catch (err) {
      if (err instanceof ServiceError) throw new UsageError(err.message)
      throw err
    }
  }
}
