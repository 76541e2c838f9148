// The catalog: the apps an allocator may run, with every default filled in (APP_DEFAULTS,
// config/defaults.ts). Nothing outside it can ever be started: a request names an app,
// never an image or command.
import type { AppConfig, Config } from '../config/schema.js'
import { APP_DEFAULTS } from '../config/defaults.js'

/** What an app speaks (its Protocol key): HTTP/1.1, HTTP/2 without TLS, or gRPC (h2c with gRPC errors). */
export type AppProtocol = 'http1' | 'h2c' | 'grpc'

export interface AppSpec {
  name: string
  image?: string
  command?: string[]
  port: number
  /** What the instance host speaks to the app. */
  protocol: AppProtocol
  env: Record<string, string>
  health: { path: string; tcp: boolean; intervalMs: number; timeoutMs: number; failureThreshold: number }
  resources: { memoryMB: number; cpus: number; pids: number }
  idleTimeoutS: number
  startTimeoutS: number
  maxInstances: number
  minInstances: number
  targetConcurrency: number
  perf: { softRttMs: number; hardRttMs: number }
  /** The proxy's traffic policy; the timeouts unset: the proxy's own (Proxy.RequestTimeoutS). */
  traffic: {
    requestTimeoutS?: number
    tryTimeoutS?: number
    retry: { attempts: number; on: Array<'error' | '5xx'>; budgetPercent: number }
  }
}

export function appSpec(name: string, a: AppConfig, global: Config['Perf']): AppSpec {
  const d = APP_DEFAULTS
  return {
    name,
    image: a.Image,
    command: a.Command,
    port: a.Port ?? d.Port,
    protocol: a.Protocol ?? d.Protocol,
    env: { ...(a.Env ?? d.Env) },
    health: {
      path: a.Health?.Path ?? d.Health.Path,
      tcp: a.Health?.Tcp ?? d.Health.Tcp,
      intervalMs: a.Health?.IntervalMs ?? d.Health.IntervalMs,
      timeoutMs: a.Health?.TimeoutMs ?? d.Health.TimeoutMs,
      failureThreshold: a.Health?.FailureThreshold ?? d.Health.FailureThreshold
    },
    resources: {
      memoryMB: a.Resources?.MemoryMB ?? d.Resources.MemoryMB,
      cpus: a.Resources?.Cpus ?? d.Resources.Cpus,
      pids: a.Resources?.Pids ?? d.Resources.Pids
    },
    idleTimeoutS: a.IdleTimeoutS ?? d.IdleTimeoutS,
    startTimeoutS: a.StartTimeoutS ?? d.StartTimeoutS,
    maxInstances: a.MaxInstances ?? d.MaxInstances,
    minInstances: a.MinInstances ?? d.MinInstances,
    targetConcurrency: a.TargetConcurrency ?? d.TargetConcurrency,
    traffic: {
      requestTimeoutS: a.RequestTimeoutS,
      tryTimeoutS: a.TryTimeoutS,
      retry: {
        attempts: a.Retry?.Attempts ?? d.Retry.Attempts,
        on: [...(a.Retry?.On ?? d.Retry.On)],
        budgetPercent: a.Retry?.BudgetPercent ?? d.Retry.BudgetPercent
      }
    },
    // An app without its own latency requirements has the cluster's.
    perf: {
      softRttMs: a.Perf?.SoftReq?.RTT ?? global.SoftReq.RTT,
      hardRttMs: a.Perf?.HardReq?.RTT ?? global.HardReq.RTT
    }
  }
}

export class Catalog {
  private readonly apps = new Map<string, AppSpec>()

  constructor(config: Pick<Config, 'Apps' | 'Perf'>) {
    this.update(config)
  }

  /** Replaces every app definition (a config reload); instances already running keep theirs. */
  update(config: Pick<Config, 'Apps' | 'Perf'>): void {
    this.apps.clear()
    for (const [name, a] of Object.entries(config.Apps)) this.apps.set(name, appSpec(name, a, config.Perf))
  }

  get(name: string): AppSpec | undefined {
    return this.apps.get(name)
  }
  names(): string[] {
    return [...this.apps.keys()].sort()
  }
  list(): AppSpec[] {
    return [...this.apps.values()]
  }
}
