import { BaseCommand } from '../cli/base.js'

export default class HelloWorldServer extends BaseCommand {
  static override hidden = true
  static override summary =
    'Run the demo app, hello-world-server, on $PORT (default 8080): what the default catalog starts.'

  async run(): Promise<void> {
    await this.parse(HelloWorldServer)
    // The app's own source, bundled into the executable; it listens until SIGINT/SIGTERM.
    await import('../../apps/hello-world-server/server.mjs')
  }
}
