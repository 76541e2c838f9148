// The configuration contract: one JSON Schema (ajv) for every key, PascalCase as in
// the original PhysarumSM conf.json. RTT values are milliseconds. Every object is
// closed (additionalProperties: false) so that a typo is an error, not a silent default.
import type { FromSchema } from '../util/ajv.js'

const rttReq = {
  type: 'object',
  additionalProperties: false,
  properties: {
    RTT: { type: 'number', minimum: 0, maximum: 600000, description: 'Round-trip time in milliseconds.' }
  },
  required: ['RTT']
} as const

export const perfSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Latency requirements: an instance within SoftReq is preferred; one beyond HardReq is never used.',
  properties: {
    SoftReq: { ...rttReq, description: 'Preferred round-trip time to an instance (ms).' },
    HardReq: { ...rttReq, description: 'Largest acceptable round-trip time to an instance (ms).' }
  }
} as const

export const APP_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$'

export const appSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'An app that allocators may start. Only catalog apps can ever run.',
  properties: {
    Image: { type: 'string', minLength: 1, maxLength: 512, description: 'Docker image (Docker runtime).' },
    Command: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', maxLength: 4096 },
      description:
        'Command and arguments (process runtime), with PORT and HOST=127.0.0.1 in its environment; a first word `physarum` means this physarum executable.'
    },
    Port: {
      type: 'integer',
      minimum: 1,
      maximum: 65535,
      description: 'Port the app listens on inside its container, or its fixed port for a user-run instance.'
    },
    Protocol: {
      type: 'string',
      enum: ['http1', 'h2c', 'grpc'],
      description:
        'What the app speaks: http1 (HTTP/1.1), h2c (HTTP/2 without TLS) or grpc (h2c with gRPC status errors). Clients may use HTTP/1.1 or HTTP/2 whatever it is; the instance host speaks this to the app.'
    },
    Env: {
      type: 'object',
      additionalProperties: { type: 'string', maxLength: 65536 },
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      description: 'Environment variables for the app.'
    },
    Health: {
      type: 'object',
      additionalProperties: false,
      description: 'Readiness and liveness check: an HTTP GET of Path answering < 500, or a TCP connect.',
      properties: {
        Path: { type: 'string', pattern: '^/', maxLength: 2048, description: 'HTTP path to GET.' },
        Tcp: { type: 'boolean', description: 'Check with a TCP connect instead of HTTP.' },
        IntervalMs: {
          type: 'integer',
          minimum: 10,
          maximum: 600000,
          description: 'Time between liveness checks (ms).'
        },
        TimeoutMs: { type: 'integer', minimum: 10, maximum: 600000, description: 'Timeout of one check (ms).' },
        FailureThreshold: {
          type: 'integer',
          minimum: 1,
          maximum: 100,
          description: 'Consecutive failed checks before a running instance is removed.'
        }
      }
    },
    Resources: {
      type: 'object',
      additionalProperties: false,
      description: 'Limits applied to every instance.',
      properties: {
        MemoryMB: {
          type: 'integer',
          minimum: 4,
          maximum: 1048576,
          description: 'Memory limit (MB); also charged to the allocator memory budget.'
        },
        Cpus: { type: 'number', exclusiveMinimum: 0, maximum: 1024, description: 'CPU limit (cores).' },
        Pids: { type: 'integer', minimum: 1, maximum: 1000000, description: 'Process count limit (Docker).' }
      }
    },
    IdleTimeoutS: {
      type: 'number',
      minimum: 0,
      maximum: 2592000,
      description: 'An instance with nothing in flight for this long is stopped (s).'
    },
    StartTimeoutS: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 3600,
      description: 'An instance not ready within this time is removed, and the allocation answers NOT_READY (s).'
    },
    MaxInstances: {
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      description: 'Most instances of this app on one allocator.'
    },
    MinInstances: {
      type: 'integer',
      minimum: 0,
      maximum: 10000,
      description: 'Instances kept warm on each allocator.'
    },
    TargetConcurrency: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      description: 'In-flight requests per instance above which proxies ask for another instance.'
    },
    RequestTimeoutS: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 86400,
      description:
        'The longest a request to this app waits for its answer to begin, all tries together (s); default Proxy.RequestTimeoutS.'
    },
    TryTimeoutS: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 86400,
      description:
        'The longest one try waits for the answer to begin, or between two pieces of its body, before it fails (s); default RequestTimeoutS.'
    },
    Retry: {
      type: 'object',
      additionalProperties: false,
      description:
        'Which failed requests the proxy sends again, to another instance. A host that could not be reached, or that says the app never saw the request, is always tried next.',
      properties: {
        Attempts: {
          type: 'integer',
          minimum: 1,
          maximum: 5,
          description: 'Tries of a request in all, the first included (1: never retried).'
        },
        On: {
          type: 'array',
          items: { enum: ['error', '5xx'] },
          uniqueItems: true,
          maxItems: 2,
          description:
            'What is retried once a GET, HEAD or OPTIONS without a body was sent (never another method): error (the connection broke or the try timed out), 5xx (the app answered 500 or above).'
        },
        BudgetPercent: {
          type: 'number',
          minimum: 0,
          maximum: 100,
          description:
            'Retries allowed per 100 requests to the app (a retry budget: a struggling app sees no retry storm); a host that died is not charged.'
        }
      }
    },
    Perf: perfSchema
  }
} as const

export const configSchema = {
  $id: 'physarum-config',
  type: 'object',
  additionalProperties: false,
  properties: {
    Perf: perfSchema,
    Bootstraps: {
      type: 'array',
      items: { type: 'string', maxLength: 1024 },
      maxItems: 1024,
      description: 'Multiaddrs, with /p2p/<peer id>, of nodes to join through.'
    },
    Listen: {
      type: 'array',
      items: { type: 'string', maxLength: 1024 },
      maxItems: 64,
      description: 'Multiaddrs to listen on.'
    },
    Announce: {
      type: 'array',
      items: { type: 'string', maxLength: 1024 },
      maxItems: 64,
      description: 'Multiaddrs to announce instead of the listen addresses (behind NAT or a port forward).'
    },
    Psk: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description:
        'Cluster pre-shared key: 64 hex digits, or a passphrase hashed to a key. Without it (or PskFile) the network is open.'
    },
    PskFile: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description:
        'File holding the PSK (64 hex digits, a passphrase, or a libp2p swarm.key); must not be group- or world-readable.'
    },
    KeyFile: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      description: 'Identity key file (the peer ID), created 0600 when missing.'
    },
    Apps: {
      type: 'object',
      description: 'The catalog: app name → definition.',
      propertyNames: { pattern: APP_NAME_PATTERN },
      additionalProperties: appSchema,
      maxProperties: 1000
    },
    Allocator: {
      type: 'object',
      additionalProperties: false,
      properties: {
        Runtime: {
          enum: ['auto', 'docker', 'process'],
          description: 'Where instances run: docker, process, or auto (Docker when an engine answers).'
        },
        MaxInstances: {
          type: 'integer',
          minimum: 0,
          maximum: 100000,
          description: 'Most instances on this allocator.'
        },
        MemoryMB: {
          type: 'integer',
          minimum: 0,
          maximum: 16777216,
          description: 'Memory budget for all instances (MB).'
        },
        DrainTimeoutS: {
          type: 'number',
          minimum: 0,
          maximum: 3600,
          description: 'On shutdown, how long in-flight requests may finish (s).'
        },
        ReapGraceS: {
          type: 'number',
          minimum: 0,
          maximum: 86400,
          description:
            'After this allocator died (not --ephemeral), how long its instances wait for it to start again and adopt them before its watchdog removes them (s).'
        },
        RateLimit: {
          type: 'object',
          additionalProperties: false,
          description: 'Allocation requests per requesting peer (token bucket).',
          properties: {
            PerSecond: {
              type: 'number',
              exclusiveMinimum: 0,
              maximum: 100000,
              description: 'Requests per second a peer may make, sustained (the refill rate).'
            },
            Burst: {
              type: 'integer',
              minimum: 1,
              maximum: 100000,
              description: 'Requests a peer may make at once (the bucket size).'
            }
          }
        }
      }
    },
    Proxy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        Port: { type: 'integer', minimum: 0, maximum: 65535, description: 'HTTP entrypoint port.' },
        Bind: { type: 'string', minLength: 1, maxLength: 255, description: 'HTTP entrypoint address.' },
        ColdStartTimeoutS: {
          type: 'number',
          exclusiveMinimum: 0,
          maximum: 3600,
          description: 'How long a request may wait for a new instance (s).'
        },
        RequestTimeoutS: {
          type: 'number',
          exclusiveMinimum: 0,
          maximum: 86400,
          description: 'Per-request timeout (s).'
        },
        LocalFastPath: {
          type: 'boolean',
          description:
            'When the chosen instance runs on this host (an allocator here, or an instance registered with this proxy), send the request straight to it over loopback, without the libp2p hop; false: every request to another daemon goes over libp2p. Env PHYSARUM_LOCAL_FAST_PATH (0 or 1) overrides it.'
        },
        Tls: {
          type: 'object',
          additionalProperties: false,
          description:
            'HTTPS on the entrypoint, HTTP/2 offered by ALPN on the same port; both files re-read on SIGHUP. Without it: plain HTTP (and h2c).',
          properties: {
            CertFile: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description:
                'PEM certificate chain, the server certificate first (`config init --tls` writes a self-signed one).'
            },
            KeyFile: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description: 'PEM private key of the certificate; mode 0600 (refused when group or others can read it).'
            }
          }
        }
      }
    },
    Admin: {
      type: 'object',
      additionalProperties: false,
      properties: {
        Listen: {
          type: 'string',
          pattern: '^[^\\s]+:[0-9]{1,5}$',
          description: 'HOST:PORT of the local admin API (`members`, `/metrics`); port 0 picks one.'
        },
        Operators: {
          type: 'array',
          maxItems: 1000,
          uniqueItems: true,
          items: { type: 'string', pattern: '^[1-9A-HJ-NP-Za-km-z]{40,128}$' },
          description:
            "Peer IDs whose admin requests this allocator takes over the network (`physarum drain PEER` from another host: an agent there, with that host's admin token); none: no remote administration."
        }
      }
    },
    Membership: {
      type: 'object',
      additionalProperties: false,
      description: 'Gossip membership and SWIM failure detection.',
      properties: {
        AnnounceIntervalMs: {
          type: 'integer',
          minimum: 100,
          maximum: 3600000,
          description:
            'Full re-announcement (ms), only when the state changed since the last one (changes go at once as deltas; none at rest): up to 10 members, one interval more per 10 members beyond (a flat total in the cluster).'
        },
        ProbeIntervalMs: {
          type: 'integer',
          minimum: 50,
          maximum: 600000,
          description:
            'The SWIM protocol period (ms): each node probes one member (round-robin over a shuffled list) per period; the probes also give RTTs and network coordinates.'
        },
        ProbeTimeoutMs: {
          type: 'integer',
          minimum: 10,
          maximum: 600000,
          description:
            'A direct probe without an answer in this time is retried through 3 other members (indirect probes, ms); a member none reaches within the period is suspect.'
        },
        SuspectTimeoutMs: {
          type: 'integer',
          minimum: 10,
          maximum: 3600000,
          description:
            'Base wait before a suspect member that does not refute is failed (ms): four times this when no other member confirms the suspicion, down to two thirds of it when three do, times log10 of the cluster size past 10; a node that is itself slow stretches it (local health).'
        },
        ForgetAfterS: {
          type: 'number',
          minimum: 0,
          maximum: 31536000,
          description: 'Failed and left members are forgotten after this long (s).'
        }
      }
    },
    Log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        Level: { enum: ['error', 'warn', 'info', 'debug'], description: 'The least severe level that is logged.' },
        Format: {
          enum: ['text', 'json'],
          description: 'text for a terminal, json (one object per line) for a log collector.'
        }
      }
    }
  }
} as const

// --- Types, from the schemas above (FromSchema): they cannot drift from what ajv accepts.

/** An app of the catalog as written: every key optional; the catalog fills in APP_DEFAULTS. */
export type AppConfig = FromSchema<typeof appSchema>

/** One layer of the configuration as written (a file, the environment, the flags): every key optional. */
export type ConfigLayer = FromSchema<typeof configSchema>

type DeepRequired<T> = T extends unknown[] ? T : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T
/** A section whose every key has a default (defaults.ts): complete in a loaded config. */
type Complete<K extends keyof ConfigLayer> = DeepRequired<NonNullable<ConfigLayer[K]>>

/**
 * The complete configuration a daemon runs with (loadConfig, for a role): every key that
 * has a default, present, the role's (Listen, KeyFile, Admin.Listen) included. Optional
 * still: KeyFile (none: a throwaway identity), Admin.Listen (none: no admin API),
 * Announce, Psk, PskFile, and an app's own keys (see AppConfig).
 */
export type Config = Omit<
  ConfigLayer,
  'Perf' | 'Bootstraps' | 'Listen' | 'Apps' | 'Allocator' | 'Proxy' | 'Admin' | 'Membership' | 'Log'
> & {
  Perf: Complete<'Perf'>
  Bootstraps: string[]
  Listen: string[]
  Apps: Record<string, AppConfig>
  Allocator: Complete<'Allocator'>
  /** Tls is optional (none: plain HTTP). */
  Proxy: Omit<Complete<'Proxy'>, 'Tls'> & { Tls?: NonNullable<ConfigLayer['Proxy']>['Tls'] }
  Admin: NonNullable<ConfigLayer['Admin']>
  Membership: Complete<'Membership'>
  Log: Complete<'Log'>
}
