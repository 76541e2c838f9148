// Test helpers: agents, allocators and proxies on 127.0.0.1 inside the test process, and polling.
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtinDefaults, type Role } from '../../src/config/defaults.js'
import type { AppConfig, Config } from '../../src/config/schema.js'
import { Agent } from '../../src/cluster/agent.js'
import { AllocatorDaemon } from '../../src/allocator/daemon.js'
import { ProxyDaemon } from '../../src/proxy/daemon.js'
import { createLogger, silentLogger } from '../../src/util/log.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { noteAllocator } from './orphans.js'

/** A partial config; its Allocator section partial too (defaults fill the rest). */
export type TestConfig = Omit<Partial<Config>, 'Allocator'> & { Allocator?: Partial<Config['Allocator']> }

export function testConfig(over: TestConfig = {}): Config {
  const c = builtinDefaults()
  return {
    ...c,
    Listen: ['/ip4/127.0.0.1/tcp/0'],
    Membership: { ...c.Membership, AnnounceIntervalMs: 2000 },
    ...over,
    Allocator: { ...c.Allocator, ...over.Allocator }
  }
}

const log = process.env.TEST_LOG === '1' ? createLogger({ level: 'debug' }) : silentLogger

export async function startAgent(opts: { role?: Role; config?: TestConfig } = {}): Promise<Agent> {
  return await Agent.start({
    role: opts.role ?? 'allocator',
    config: testConfig(opts.config),
    log,
    ephemeral: true,
    admin: false
  })
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10000,
  everyMs = 20
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await fn()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    await sleep(everyMs)
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`
  )
}

/**
 * Runs `fn` on two agents joined through a PSK, with membership stopped: a quiet
 * connection on which a test counts what one exchange costs. Both are stopped after,
 * however `fn` ends.
 */
export async function withQuietPair(psk: string, fn: (a: Agent, b: Agent) => Promise<void>): Promise<void> {
  const a = await startAgent({ config: { Psk: psk } })
  const b = await startAgent({ config: { Psk: psk, Bootstraps: [addrOf(a)] } })
  try {
    await waitFor('connected', () => a.membership.table.get(b.peer) !== undefined)
    await a.membership.stop()
    await b.membership.stop()
    await fn(a, b)
  } finally {
    await a.stop()
    await b.stop()
  }
}

export function addrOf(a: Agent): string {
  return a.node
    .getMultiaddrs()
    .map(m => m.toString())
    .find(s => s.startsWith('/ip4/127.0.0.1/')) as string
}

export function statusOf(observer: Agent, target: Agent): string | undefined {
  return observer.membership.table.get(target.peer)?.status
}

// --- allocators in-process -------------------------------------------------------------
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const HELLO_COMMAND = [process.execPath, resolve(REPO, 'apps/hello-world-server/server.mjs')]

/** The hello-world-server as a process-runtime app, with overrides. */
export function helloApp(over: AppConfig = {}): AppConfig {
  return {
    Command: HELLO_COMMAND,
    Health: { Path: '/healthz' },
    IdleTimeoutS: 300,
    MaxInstances: 4,
    Resources: { MemoryMB: 64 },
    ...over
  }
}

export async function startAllocator(
  config: TestConfig = {},
  opts: { stateDir?: string; inboundOnly?: boolean } = {}
): Promise<AllocatorDaemon> {
  const base = testConfig(config)
  const runtime = config.Allocator?.Runtime ?? 'process'
  const a = await AllocatorDaemon.start({
    config: {
      ...base,
      Allocator: { ...base.Allocator, Runtime: runtime, ...config.Allocator },
      ...(opts.stateDir !== undefined ? { KeyFile: resolve(opts.stateDir, 'allocator.key') } : {})
    },
    log,
    ephemeral: opts.stateDir === undefined,
    admin: false,
    inboundOnly: opts.inboundOnly
  })
  // helpers/orphans.ts: its instances (children of this process) and containers are checked at the suite's end.
  noteAllocator(a.agent.peer, runtime)
  return a
}

// --- proxies in-process ----------------------------------------------------------------

export async function startProxy(
  config: TestConfig = {},
  opts: { app?: string; address?: { host: string; port: number } } = {}
): Promise<ProxyDaemon> {
  return await ProxyDaemon.start({
    config: testConfig(config),
    log,
    port: 0,
    bind: '127.0.0.1',
    ephemeral: true,
    admin: false,
    ...opts
  })
}
