import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { agentFlags, configFlags } from '../cli/flags.js'
import { APP_NAME_PATTERN } from '../config/schema.js'

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
    min: Flags.string({ description: 'warm instances kept across the cluster (0–10000; required)', helpValue: 'N' }),
    max: Flags.string({ description: 'instances never exceeded across the cluster (0–10000)', helpValue: 'M' })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Scale)
    if (!new RegExp(APP_NAME_PATTERN).test(args.app))
      throw new UsageError(
        `${JSON.stringify(args.app)} is not a valid app name (lowercase letters, digits, '.', '_', '-')`
      )
    const count = (name: string, v: string | undefined): number | undefined => {
      if (v === undefined) return undefined
      if (!/^\d{1,5}$/.test(v) || Number(v) > 10000)
        throw new UsageError(`--${name} must be a whole number from 0 to 10000, got ${JSON.stringify(v)}`)
      return Number(v)
    }
    const min = count('min', flags.min)
    const max = count('max', flags.max)
    if (min === undefined) throw new UsageError('scale needs --min N (and optionally --max M); see --help')
    if (max !== undefined && max < min) throw new UsageError(`--max ${max} is below --min ${min}`)
    const [{ setup }, { agentRefs, errorOf, firstAgent }] = await Promise.all([
      import('../cli/setup.js'),
      import('../cli/admin-client.js')
    ])
    const { loaded } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const body = { app: args.app, min, ...(max !== undefined ? { max } : {}) }
    const { ref, answer } = await firstAgent(agentRefs(loaded.config, flags), 'POST', '/v1/scale', body)
    if (answer.status !== 200) throw new UsageError(`agent at ${ref.admin}: ${errorOf(answer)}`, 1)
    const r = answer.body as { app: string; min: number; max?: number; version: number }
    process.stdout.write(
      `scale of ${r.app} set to min ${r.min}${r.max !== undefined ? ` max ${r.max}` : ''} through ${ref.role ?? 'the agent'} ${ref.admin} (version ${r.version}); it spreads to every member\n`
    )
  }
}
