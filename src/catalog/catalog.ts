// The catalog: the apps an allocator may run, with every default filled in. Nothing
// outside it can ever be started: a request names an app, never an image or command.
import type { AppConfig, Config } from '../config/schema.js'

export interface AppSpec {
  name: string
  image?: string
  command?: string[]
  port: number
  env: Record<string, string>
  health: { path: string, tcp: boolean, intervalMs: number, timeoutMs: number, failureThreshold: number }
  resources: { memoryMB: number, cpus: number, pids: number }
  idleTimeoutS: number
  startTimeoutS: number
  maxInstances: number
  minInstances: number
  targetConcurrency: number
  perf: { softRttMs: number, hardRttMs: number }
}

export const APP_DEFAULTS = {
  port: 8080,
  healthPath: '/',
  healthIntervalMs: 2000,
  healthTimeoutMs: 1000,
  failureThreshold: 3,
  memoryMB: 256,
  cpus: 1,
  pids: 256,
  idleTimeoutS: 60,
  startTimeoutS: 30,
  maxInstances: 4,
  minInstances: 0,
  targetConcurrency: 50
} as const

export function appSpec (name: string, a: AppConfig, global: Config['Perf']): AppSpec {
  return {
    name,
    image: a.Image,
    command: a.Command,
    port: a.Port ?? APP_DEFAULTS.port,
    env: { ...(a.Env ?? {}) },
    health: {
      path: a.Health?.Path ?? APP_DEFAULTS.healthPath,
      tcp: a.Health?.Tcp ?? false,
      intervalMs: a.Health?.IntervalMs ?? APP_DEFAULTS.healthIntervalMs,
      timeoutMs: a.Health?.TimeoutMs ?? APP_DEFAULTS.healthTimeoutMs,
      failureThreshold: a.Health?.FailureThreshold ?? APP_DEFAULTS.failureThreshold
    },
    resources: {
      memoryMB: a.Resources?.MemoryMB ?? APP_DEFAULTS.memoryMB,
      cpus: a.Resources?.Cpus ?? APP_DEFAULTS.cpus,
      pids: a.Resources?.Pids ?? APP_DEFAULTS.pids
    },
    idleTimeoutS: a.IdleTimeoutS ?? APP_DEFAULTS.idleTimeoutS,
    startTimeoutS: a.StartTimeoutS ?? APP_DEFAULTS.startTimeoutS,
    maxInstances: a.MaxInstances ?? APP_DEFAULTS.maxInstances,
    minInstances: a.MinInstances ?? APP_DEFAULTS.minInstances,
    targetConcurrency: a.TargetConcurrency ?? APP_DEFAULTS.targetConcurrency,
    perf: {
      softRttMs: a.Perf?.SoftReq?.RTT ?? global.SoftReq.RTT,
      hardRttMs: a.Perf?.HardReq?.RTT ?? global.HardReq.RTT
    }
  }
}

export class Catalog {
  private readonly apps = new Map<string, AppSpec>()

  constructor (config: Pick<Config, 'Apps' | 'Perf'>) {
    for (const [name, a] of Object.entries(config.Apps)) this.apps.set(name, appSpec(name, a, config.Perf))
  }

  get (name: string): AppSpec | undefined { return this.apps.get(name) }
  names (): string[] { return [...this.apps.keys()].sort() }
  list (): AppSpec[] { return [...this.apps.values()] }
}
