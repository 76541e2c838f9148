// A cluster of real CLI daemons (bin/physarum allocator / proxy as child processes) in
// a scratch directory, for the fault, load, hostile-input and security suites: each with
// its own config file, key file (so that a restarted allocator keeps its identity and
// finds its leftovers) and admin API on 127.0.0.1, plus what the tests ask of them.
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type { TestContext } from 'node:test'
import { join } from 'node:path'
import { spawnCli, killAll, alive, childrenOf, type Daemon } from './cli.js'
import { waitFor } from './cluster.js'
import type { MemberView } from '../../src/cluster/agent.js'

export interface Started {
  d: Daemon
  /** Full multiaddr on 127.0.0.1. */
  addr: string
  peer: string
  admin: string
  /** http://127.0.0.1:PORT of a proxy's entrypoint. */
  http?: string
}

export interface InstanceView {
  id: string
  app: string
  state: string
  adopted: boolean
  address: string | null
}

export interface AllocatorSpec {
  name: string
  apps: Record<string, unknown>
  runtime?: 'process' | 'docker'
  bootstraps?: string[]
  env?: NodeJS.ProcessEnv
  allocator?: Record<string, unknown>
  /** TCP port to listen on (a restart keeps its address, as a server's allocator would). */
  port?: number
  /** Membership timing (the config's Membership section). */
  membership?: Record<string, number>
}

export class CliCluster {
  private readonly daemons: Daemon[] = []

  constructor(
    readonly dir: string,
    readonly psk: string
  ) {}

  /**
   * Stops every daemon of the cluster (SIGTERM, so that allocators stop their instances;
   * SIGKILL after `graceMs`), then kills what an allocator that was killed left behind:
   * the process groups of its children (its instances), and, by PID, any process still
   * working in the cluster's directory.
   */
  async stop(graceMs = 5000): Promise<void> {
    // Read before the daemons go: an orphaned instance is no longer anyone's child.
    const groups = this.daemons.flatMap(d =>
      d.child.pid !== undefined && d.child.exitCode === null && d.child.signalCode === null
        ? childrenOf(d.child.pid)
        : []
    )
    await Promise.all(
      this.daemons.map(async d => {
        if (d.child.exitCode !== null || d.child.signalCode !== null) return
        try {
          d.child.kill('SIGCONT')
          d.child.kill('SIGTERM')
        } catch {}
        const t = setTimeout(() => {
          try {
            d.child.kill('SIGKILL')
          } catch {}
        }, graceMs)
        await d.exited
        clearTimeout(t)
      })
    )
    for (const g of groups) {
      if (alive(g)) {
        try {
          process.kill(-g, 'SIGKILL')
        } catch {}
      }
    }
    for (const pid of readdirSync('/proc').filter(x => /^\d+$/.test(x))) {
      let cwd = ''
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`)
      } catch {
        continue
      }
      if (cwd === this.dir || cwd.startsWith(`${this.dir}/`)) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {}
      }
    }
  }

  private conf(name: string, body: Record<string, unknown>, port = 0): string {
    const file = join(this.dir, `${name}.json`)
    writeFileSync(file, JSON.stringify({ Listen: [`/ip4/127.0.0.1/tcp/${port}`], ...body }))
    return file
  }

  private async started(d: Daemon): Promise<Started> {
    const m = await d.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/, 30000)
    const admin = (await d.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
    return { d, addr: m[1], peer: m[2], admin }
  }

  /** An allocator; the same `name` again is the same identity and state directory (a restart). */
  async allocator(s: AllocatorSpec): Promise<Started> {
    const home = join(this.dir, s.name)
    mkdirSync(home, { recursive: true })
    const conf = this.conf(
      s.name,
      {
        Apps: s.apps,
        Bootstraps: s.bootstraps ?? [],
        Allocator: {
          Runtime: s.runtime ?? 'process',
          DrainTimeoutS: 10,
          RateLimit: { PerSecond: 100, Burst: 200 },
          ...s.allocator
        },
        ...(s.membership !== undefined ? { Membership: s.membership } : {})
      },
      s.port
    )
    const d = spawnCli(
      ['allocator', '--configfile', conf, '--keyfile', join(home, 'allocator.key'), '--admin', '127.0.0.1:0'],
      { env: { PHYSARUM_PSK: this.psk, ...s.env }, cwd: home }
    )
    this.daemons.push(d)
    const st = await this.started(d)
    await d.waitFor(/catalog: /, 30000)
    return st
  }

  /** A proxy in client mode; `port` 0 picks one (pass the old one to restart in place). */
  async proxy(s: {
    name: string
    bootstraps: string[]
    port?: number
    apps?: Record<string, unknown>
    membership?: Record<string, number>
  }): Promise<Started & { http: string }> {
    const conf = this.conf(s.name, {
      Bootstraps: s.bootstraps,
      ...(s.apps !== undefined ? { Apps: s.apps } : {}),
      ...(s.membership !== undefined ? { Membership: s.membership } : {})
    })
    const d = spawnCli(
      ['proxy', '--configfile', conf, '--ephemeral', '--port', String(s.port ?? 0), '--admin', '127.0.0.1:0'],
      { env: { PHYSARUM_PSK: this.psk }, cwd: this.dir }
    )
    this.daemons.push(d)
    const st = await this.started(d)
    return { ...st, http: `http://${(await d.waitFor(/proxy listening on http:\/\/(127\.0\.0\.1:\d+)\//, 30000))[1]}` }
  }
}

/** The TCP port of a started daemon's libp2p address. */
export function portOf(s: Started): number {
  return Number(/\/tcp\/(\d+)\//.exec(s.addr)?.[1])
}

const clusters: CliCluster[] = []

/**
 * A cluster in a scratch directory, for a suite that shares one across its tests (start
 * it in `before`); the file's `after` hook calls sweepClusters.
 */
export function newCluster(name: string, psk: string): CliCluster {
  const c = new CliCluster(mkdtempSync(join(tmpdir(), `physarum-${name}-`)), psk)
  clusters.push(c)
  return c
}

/** A cluster in a scratch directory, stopped when the test `t` ends (pass or fail). */
export function testCluster(t: TestContext, name: string, psk: string): CliCluster {
  const c = newCluster(name, psk)
  t.after(async () => {
    await c.stop()
  })
  return c
}

/** For a file's `after` hook: stops what a failed test left running, and removes the directories. */
export async function sweepClusters(): Promise<void> {
  await Promise.all(
    clusters.map(async c => {
      await c.stop()
    })
  )
  await killAll()
  for (const c of clusters) rmSync(c.dir, { recursive: true, force: true })
}

export async function members(admin: string): Promise<MemberView[]> {
  const r = await fetch(`http://${admin}/v1/members`, { signal: AbortSignal.timeout(5000) })
  return (await r.json()) as MemberView[]
}

export async function instances(admin: string): Promise<InstanceView[]> {
  const r = await fetch(`http://${admin}/v1/instances`, { signal: AbortSignal.timeout(5000) })
  return (await r.json()) as InstanceView[]
}

/** The status of `peer` as the member behind `admin` sees it. */
export async function statusAt(admin: string, peer: string): Promise<string | undefined> {
  return (await members(admin)).find(m => m.peer === peer)?.status
}

/** Waits until every observer (admin address) sees `peer` in one of `statuses`. */
export async function seenByAll(
  observers: string[],
  peer: string,
  statuses: string[],
  timeoutMs = 15000
): Promise<void> {
  await waitFor(
    `${peer.slice(-6)} ${statuses.join('/')} on ${observers.length} member(s)`,
    async () => {
      const s = await Promise.all(observers.map(async a => await statusAt(a, peer)))
      return s.every(x => x !== undefined && statuses.includes(x))
    },
    timeoutMs,
    100
  )
}

/** Ready instances of `app` that the proxy behind `admin` knows, from its member table. */
export async function readyAt(admin: string, app: string): Promise<number> {
  return (await members(admin))
    .filter(m => m.status === 'alive')
    .reduce((n, m) => n + (m.instances[app]?.ready ?? 0), 0)
}

/** The proxy's recent errors from its status page, for a failure message. */
export async function recentErrors(proxy: Started): Promise<string> {
  try {
    const r = await fetch(`${proxy.http as string}/`, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(5000)
    })
    const s = (await r.json()) as { recentErrors?: Array<{ status: number; message: string }> }
    return JSON.stringify((s.recentErrors ?? []).slice(0, 5).map(e => `${e.status} ${e.message}`))
  } catch (err) {
    return `(status page: ${(err as Error).message})`
  }
}
