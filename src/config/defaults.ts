// Every default of the configuration, each with why it is what it is: builtinDefaults()
// is the lowest layer, the same for every role; roleDefaults() what differs by role
// (loadConfig resolves both); APP_DEFAULTS what an app's unset key means (the catalog
// fills them in, app by app).
import { multiaddr } from '@multiformats/multiaddr'
import type { AppConfig, Config } from './schema.js'

/** The defaults every role shares: all of a config but the role's own (roleDefaults). */
export type SharedDefaults = Omit<Config, 'Listen'>

export function builtinDefaults(): SharedDefaults {
  return {
    Perf: {
      // PhysarumSM's conf.json: an instance within 100 ms (about one region) is preferred...
      SoftReq: { RTT: 100 },
      // ...and one beyond a second is never used: a cold start nearer serves better.
      HardReq: { RTT: 1000 }
    },
    // None: a first node starts a cluster of its own, and the others name it.
    Bootstraps: [],
    // The demo app, so that the embedded default runs with no config file at all.
    Apps: {
      'hello-world-server': {
        // Built from apps/hello-world-server (Docker runtime)...
        Image: 'physarum/hello-world-server:latest',
        // ...or this executable's own copy of it (process runtime).
        Command: ['physarum', 'hello-world-server'],
        Port: 8080,
        // Its readiness endpoint: answers once the server listens.
        Health: { Path: '/healthz' },
        // A small Node.js HTTP server: half a core and 128 MB are plenty.
        Resources: { MemoryMB: 128, Cpus: 0.5 },
        // Written out, though equal to APP_DEFAULTS, so that `config init` shows them.
        IdleTimeoutS: 60,
        MaxInstances: 4,
        TargetConcurrency: 50
      }
    },
    Allocator: {
      // Docker where an engine answers (isolation, resource limits), else local processes: runs on a bare host too.
      Runtime: 'auto',
      // A modest server's share; with MemoryMB, whichever limit is reached first caps the instances.
      MaxInstances: 16,
      // 4 GB for all instances together, leaving a modest server room for itself.
      MemoryMB: 4096,
      // Half the systemd unit's TimeoutStopSec (60 s): requests in flight finish, and the instances still stop in time.
      DrainTimeoutS: 30,
      // A restart (systemd's RestartSec 2 s, an upgrade, a reboot of the engine) comes back well within a minute; one
      // that does not is not coming back soon, and its instances hold ports and memory for nobody.
      ReapGraceS: 60,
      // Per requesting peer: a proxy asks once per cold start and app (single-flight), so
      // this is far above honest use, and a flood stays cheap.
      RateLimit: { PerSecond: 20, Burst: 40 }
    },
    Proxy: {
      // PhysarumSM's port (`proxy 1234`).
      Port: 1234,
      // The entrypoint serves this host's clients and apps; opening it to others is a choice (--bind).
      Bind: '127.0.0.1',
      // As long as an instance may take to turn ready (APP_DEFAULTS.StartTimeoutS): a cold request waits for one start.
      ColdStartTimeoutS: 30,
      // A request that takes over a minute is more likely stuck than slow.
      RequestTimeoutS: 60,
      // Same behaviour as over libp2p (placement, retries, drains, culling), for one loopback hop instead of two
      // processes' worth of encryption and multiplexing: on unless an operator or a benchmark wants the libp2p path.
      LocalFastPath: true
    },
    // Admin.Listen depends on the role (roleDefaults). No remote operators: the PSK admits every member, a proxy
    // included, and only an operator's explicit list may stop a host's instances from elsewhere.
    Admin: { Operators: [] },
    Membership: {
      // Changes go at once as deltas; a full announcement follows at most this often, and only when the state changed
      // (less often in a large cluster: each member receives about one per 10 s in all; none at rest).
      AnnounceIntervalMs: 10000,
      // The SWIM protocol period: each node probes one member twice a second, whatever the cluster's size (memberlist's
      // LAN default is 1 s; half of it gets a frozen peer suspected, and confirmed by others' probes, within about a
      // second). 1 s halves the bytes at rest, but a SIGSTOPped member of 20 processes took 6.5 s to fail then
      // (docs/SCALE.md).
      ProbeIntervalMs: 500,
      // A probe is one round trip on an open connection, a few ms within a region: 500 ms
      // without an answer sends indirect probes (memberlist's ProbeTimeout is 500 ms too).
      ProbeTimeoutMs: 500,
      // A suspicion nobody confirms waits 6 s in a small cluster, one three others confirm 1 s: a frozen process is
      // failed in about 2.5-3 s, a slow one has time to refute.
      SuspectTimeoutMs: 1500,
      // An hour: `members` still shows what failed or left recently, and churn does not pile up.
      ForgetAfterS: 3600
    },
    // info: start-up, membership changes and errors, not a line per request; text for a terminal (json for collectors).
    Log: { Level: 'info', Format: 'text' }
  }
}

export type Role = 'allocator' | 'proxy' | 'observer'

/** What a role's defaults depend on: the proxy's entrypoint port, the bootstraps an observer joins through. */
export interface RoleContext {
  proxyPort?: number
  bootstraps?: string[]
}

/**
 * Values whose default depends on the role, so that an allocator and proxies share a host
 * without flags. None for KeyFile: a throwaway identity; none for AdminListen: no admin API.
 */
export interface RoleDefaults {
  Listen: string[]
  AdminListen?: string
  KeyFile?: string
}

export function roleDefaults(role: Role, context: RoleContext = {}): RoleDefaults {
  switch (role) {
    case 'allocator':
      return {
        // A fixed port on every interface: others bootstrap from this multiaddr (PhysarumSM's, IPFS's swarm port).
        Listen: ['/ip4/0.0.0.0/tcp/4001'],
        // Loopback only, one port per role: the allocator's and a proxy's admin APIs share a host.
        AdminListen: '127.0.0.1:7701',
        // A stable peer ID across restarts: bootstraps name it, and it finds its instances again (state beside the
        // key).
        KeyFile: '~/.physarum/allocator.key'
      }
    case 'proxy':
      return {
        // Any free port: nobody bootstraps from a proxy, and several share a host.
        Listen: ['/ip4/0.0.0.0/tcp/0'],
        AdminListen: '127.0.0.1:7702',
        // One identity per entrypoint port: proxies on one host are distinct peers, each with a stable ID.
        // An entrypoint on a free port (0: a server-mode proxy's default) has no stable ID either.
        KeyFile:
          context.proxyPort === 0
            ? undefined
            : `~/.physarum/proxy-${context.proxyPort ?? builtinDefaults().Proxy.Port}.key`
      }
    // An observer (`members` joining briefly) never takes an agent's identity and has no
    // admin API; it listens on loopback only when every bootstrap is on loopback.
    case 'observer':
      return { Listen: [(context.bootstraps ?? []).every(isLoopback) ? '/ip4/127.0.0.1/tcp/0' : '/ip4/0.0.0.0/tcp/0'] }
  }
}

function isLoopback(addr: string): boolean {
  const ip =
    multiaddr(addr)
      .getComponents()
      .find(c => c.name === 'ip4' || c.name === 'ip6')?.value ?? ''
  return ip.startsWith('127.') || ip === '::1'
}

type Filled<T> = Required<NonNullable<T>>

/** What an app's unset keys mean; an unset Perf is the top-level Perf. The catalog fills them in. */
export const APP_DEFAULTS: Required<
  Pick<
    AppConfig,
    | 'Port'
    | 'Protocol'
    | 'Env'
    | 'IdleTimeoutS'
    | 'StartTimeoutS'
    | 'MaxInstances'
    | 'MinInstances'
    | 'TargetConcurrency'
  >
> & {
  Health: Filled<AppConfig['Health']>
  Resources: Filled<AppConfig['Resources']>
  Retry: Filled<AppConfig['Retry']>
} = {
  // The usual port of an HTTP app in a container.
  Port: 8080,
  // What nearly every app speaks; HTTP/2 apps say so.
  Protocol: 'http1',
  // Only PORT and HOST, which every instance gets.
  Env: {},
  Health: {
    // Every HTTP app answers its root; any status below 500 counts as ready.
    Path: '/',
    // HTTP: a listening socket alone is not a ready app.
    Tcp: false,
    // A dead instance is removed within seconds, at the cost of one local request every 2 s.
    IntervalMs: 2000,
    // A healthy local app answers in milliseconds: a second is a generous wait.
    TimeoutMs: 1000,
    // One slow answer (a GC pause) does not remove an instance; three in a row do.
    FailureThreshold: 3
  },
  Resources: {
    // Room for a small web app and its runtime.
    MemoryMB: 256,
    // One core: what a single-threaded server (most are) can use.
    Cpus: 1,
    // Stops a fork bomb and leaves room for worker processes and threads.
    Pids: 256
  },
  // A minute unused and the instance goes; the next request waits for a cold start.
  IdleTimeoutS: 60,
  // An image already on the host starts and turns ready well within 30 s.
  StartTimeoutS: 30,
  // Scale-out per allocator without one app taking all of its slots.
  MaxInstances: 4,
  // Nothing runs until a request asks for it.
  MinInstances: 0,
  // Requests one instance of a typical HTTP app serves at once without queueing.
  TargetConcurrency: 50,
  Retry: {
    // One more try on another instance: enough to step past one that just died.
    Attempts: 2,
    // A broken connection or a timeout says little about the app; a 5xx may be the app's
    // own verdict (an overloaded app says 503), so it is retried only when an app asks.
    On: ['error'],
    // Linkerd's and Finagle's 20 %: at most 1.2× an app's load comes from retries.
    BudgetPercent: 20
  }
}
