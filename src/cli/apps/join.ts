// `physarum apps` where no local agent answers: joins the cluster briefly as an observer
// (as members does) and reads the apps from what the members announce.
import type { Config } from '../../config/schema.js'
import type { Logger } from '../../util/log.js'
import { appView, appsView, type AppView } from '../../cluster/apps.js'
import { joinBriefly } from '../members/client.js'
import { UsageError } from '../base.js'

export async function joinedApps(
  config: Config,
  log: Logger,
  waitMs: number,
  app: string | undefined
): Promise<AppView[] | AppView> {
  const seen = await joinBriefly(config, log, waitMs, agent => {
    agent.syncScale()
    return { rows: agent.view().filter(v => !v.self), scale: agent.scale.all() }
  })
  if (seen.rows.length === 0)
    throw new UsageError(
      `no member answered through the bootstraps (${config.Bootstraps.join(', ')}) within ${waitMs / 1000} s; check the addresses and the PSK`,
      1
    )
  if (app === undefined) return appsView(seen.rows, seen.scale)
  const v = appView(seen.rows, seen.scale, app)
  if (v === undefined) throw new UsageError(`unknown app ${app}: no member lists it, hosts it or has a scale for it`, 1)
  return v
}
