// Built-in defaults: the lowest layer of the configuration. The hello-world-server
// app makes the embedded default runnable with no config file at all.
import type { Config } from './schema.js'

export function builtinDefaults (): Config {
  return {
    Perf: { SoftReq: { RTT: 100 }, HardReq: { RTT: 1000 } },
    Bootstraps: [],
    Apps: {
      'hello-world-server': {
        Image: 'physarum/hello-world-server:latest',
        Command: ['physarum', 'hello-world-server'],
        Port: 8080,
        Health: { Path: '/healthz' },
        Resources: { MemoryMB: 128, Cpus: 0.5 },
        IdleTimeoutS: 60,
        MaxInstances: 4,
        TargetConcurrency: 50
      }
    },
    Allocator: { Runtime: 'auto', MaxInstances: 16, MemoryMB: 4096, DrainTimeoutS: 30, RateLimit: { PerSecond: 20, Burst: 40 } },
    Proxy: { Port: 1234, Bind: '127.0.0.1', ColdStartTimeoutS: 30, RequestTimeoutS: 60 },
    Admin: {},
    Membership: { AnnounceIntervalMs: 10000, ProbeIntervalMs: 500, ProbeTimeoutMs: 500, SuspectTimeoutMs: 1500, ForgetAfterS: 3600 },
    Log: { Level: 'info', Format: 'text' }
  }
}

export type Role = 'allocator' | 'proxy' | 'observer'

/** Values whose default depends on the role, so an allocator and proxies share a host without flags. */
export function roleDefaults (role: Role, proxyPort?: number): { Listen: string[], AdminListen?: string, KeyFile?: string } {
  switch (role) {
    case 'allocator': return { Listen: ['/ip4/0.0.0.0/tcp/4001'], AdminListen: '127.0.0.1:7701', KeyFile: '~/.physarum/allocator.key' }
    case 'proxy': return { Listen: ['/ip4/0.0.0.0/tcp/0'], AdminListen: '127.0.0.1:7702', KeyFile: `~/.physarum/proxy-${proxyPort ?? 1234}.key` }
    default: return { Listen: ['/ip4/127.0.0.1/tcp/0'] }
  }
}
