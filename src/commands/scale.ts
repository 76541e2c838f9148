import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'

export default class Scale extends BaseCommand {
  static override summary = "Set an app's warm minimum (and maximum) of instances across the cluster."
  static override description =
    'The setting spreads by gossip to every member (the later setting wins) and the allocators that list the app honour it: together they keep --min instances warm (never culled as idle) and never start more than --max. Allocators keep it across restarts. --min 0 without --max lifts the minimum: idle instances are culled again.'
  static override examples = [
    '<%= config.bin %> scale hello-world-server --min 2',
    '<%= config.bin %> scale hello-world-server --min 1 --max 3',
    '<%= config.bin %> scale hello-world-server --min 0'
  ]

  static override args = { app: Args.string({ description: 'app name', required: true }) }

  static override flags = {
    ...configFlags,
    ...agentFlags,
    min: Flags.integer({ description: 'warm instances kept across the cluster', required: true, min: 0, max: 10000 }),
    max: Flags.integer({ description: 'instances never exceeded across the cluster', min: 0, max: 10000 })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Scale)
    if (flags.max !== undefined && flags.max < flags.min)
      throw new UsageError(`--max ${flags.max} is below --min ${flags.min}`)
    const [{ setup }, { agentRefs, errorOf, firstAgent }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/admin-client.js')
    ])
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const body = { app: args.app, min: flags.min, ...(flags.max !== undefined ? { max: flags.max } : {}) }
    const { ref, answer } = await firstAgent(agentRefs(loaded.config, flags), 'POST', '/v1/scale', body)
    if (answer.status !== 200) throw new UsageError(`agent at ${ref.admin}: ${errorOf(answer)}`, 1)
    const r = answer.body as { app: string; min: number; max?: number; version: number }
    process.stdout.write(
      `scale of ${r.app} set to min ${r.min}${r.max !== undefined ? ` max ${r.max}` : ''} through ${ref.role ?? 'the agent'} ${ref.admin} (version ${r.version}); it spreads to every member\n`
    )
  }
}
