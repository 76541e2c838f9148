// loadConfig returns the complete config of a role: the role's defaults (Listen, KeyFile,
// Admin.Listen) resolved in with their source, flags applied, and no key file for an
// observer or an ephemeral daemon. No file is read here (noFile, an empty environment).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig, type ConfigFlags, type LoadedConfig } from '../../src/config/load.js'
import { builtinDefaults, roleDefaults, APP_DEFAULTS, type Role } from '../../src/config/defaults.js'
import { configSchema, appSchema } from '../../src/config/schema.js'
import { appSpec } from '../../src/catalog/catalog.js'
import { configReference } from '../../src/config/reference.js'

const PEER = '12D3KooWRULjJGiBa2sLg5s1vebmHTzsREhiY4PDbXyDBe5qGjud'
const load = (role: Role, flags: ConfigFlags = {}): LoadedConfig => loadConfig({ role, flags, noFile: true, env: {} })

test('an allocator: port 4001 on every interface, admin on 127.0.0.1:7701, ~/.physarum/allocator.key', () => {
  const { config, sources } = load('allocator')
  assert.deepEqual(config.Listen, ['/ip4/0.0.0.0/tcp/4001'])
  assert.equal(config.Admin.Listen, '127.0.0.1:7701')
  assert.equal(config.KeyFile, '~/.physarum/allocator.key')
  for (const k of ['Listen', 'Admin.Listen', 'KeyFile']) assert.equal(sources.get(k), 'role', k)
  assert.equal(sources.get('Proxy.Port'), 'default')
})

test('a proxy: an ephemeral port, admin on 127.0.0.1:7702, a key file named for its entrypoint port', () => {
  const d = load('proxy')
  assert.deepEqual(d.config.Listen, ['/ip4/0.0.0.0/tcp/0'])
  assert.equal(d.config.Admin.Listen, '127.0.0.1:7702')
  assert.equal(d.config.KeyFile, '~/.physarum/proxy-1234.key', "Proxy.Port's default")
  const p = load('proxy', { port: 1235, bind: '0.0.0.0' })
  assert.equal(p.config.Proxy.Port, 1235)
  assert.equal(p.config.Proxy.Bind, '0.0.0.0')
  assert.equal(p.sources.get('Proxy.Port'), 'flag')
  assert.equal(p.config.KeyFile, '~/.physarum/proxy-1235.key')
  assert.equal(p.sources.get('KeyFile'), 'role')
})

test("flags (and so files and the environment) win over the role's defaults", () => {
  const { config, sources } = load('allocator', {
    listen: ['/ip4/127.0.0.1/tcp/4002'],
    admin: '127.0.0.1:7711',
    keyfile: '/tmp/a2.key'
  })
  assert.deepEqual(
    [config.Listen, config.Admin.Listen, config.KeyFile],
    [['/ip4/127.0.0.1/tcp/4002'], '127.0.0.1:7711', '/tmp/a2.key']
  )
  for (const k of ['Listen', 'Admin.Listen', 'KeyFile']) assert.equal(sources.get(k), 'flag', k)
})

test('an observer and an ephemeral daemon have no key file, even when one is named', () => {
  const o = load('observer', { keyfile: '/etc/physarum/allocator.key' })
  assert.equal(o.config.KeyFile, undefined)
  assert.equal(o.sources.has('KeyFile'), false)
  assert.equal(o.config.Admin.Listen, undefined, 'no admin API of its own')
  for (const role of ['allocator', 'proxy'] as const) {
    assert.equal(load(role, { ephemeral: true }).config.KeyFile, undefined, role)
    assert.equal(load(role, { ephemeral: true, keyfile: '/tmp/k' }).config.KeyFile, undefined, `${role} with --keyfile`)
  }
})

test('an observer listens on loopback only when every bootstrap is on loopback', () => {
  assert.deepEqual(load('observer', { bootstrap: [`/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`] }).config.Listen, [
    '/ip4/127.0.0.1/tcp/0'
  ])
  assert.deepEqual(
    load('observer', { bootstrap: [`/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`, `/ip4/192.0.2.1/tcp/4001/p2p/${PEER}`] })
      .config.Listen,
    ['/ip4/0.0.0.0/tcp/0']
  )
  assert.deepEqual(load('observer', { bootstrap: [`/ip6/::1/tcp/4001/p2p/${PEER}`] }).config.Listen, [
    '/ip4/127.0.0.1/tcp/0'
  ])
})

test('the loaded config is complete: every schema key with a default has a value', () => {
  for (const role of ['allocator', 'proxy', 'observer'] as const) {
    const { config } = load(role)
    const missing: string[] = []
    interface Node {
      description?: string
      properties?: Record<string, Node>
    }
    const walk = (schema: Node, value: Record<string, unknown>, path: string): void => {
      for (const [k, node] of Object.entries(schema.properties ?? {})) {
        const p = path === '' ? k : `${path}.${k}`
        // Optional by design: see Config in schema.ts.
        if (
          ['Announce', 'Psk', 'PskFile', 'Apps', 'Proxy.Tls'].includes(p) ||
          (role === 'observer' && ['KeyFile', 'Admin.Listen'].includes(p))
        )
          continue
        if (!(k in value)) missing.push(p)
        else if (node.properties !== undefined) walk(node, value[k] as Record<string, unknown>, p)
      }
    }
    walk(configSchema, config as unknown as Record<string, unknown>, '')
    assert.deepEqual(missing, [], role)
  }
})

test("APP_DEFAULTS gives every app key a value but Image, Command, Perf and the timeouts (the proxy's own)", () => {
  const keys = (o: object, prefix = ''): string[] =>
    Object.entries(o).flatMap(([k, v]) =>
      typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0
        ? keys(v, `${prefix}${k}.`)
        : [`${prefix}${k}`]
    )
  interface Node {
    type?: string
    properties?: Record<string, Node>
  }
  const schemaKeys = (s: Node, prefix = ''): string[] =>
    Object.entries(s.properties ?? {}).flatMap(([k, v]) =>
      v.properties !== undefined ? schemaKeys(v, `${prefix}${k}.`) : [`${prefix}${k}`]
    )
  assert.deepEqual(
    keys(APP_DEFAULTS).sort(),
    schemaKeys(appSchema)
      // Perf falls back to the top-level Perf, the two timeouts to Proxy.RequestTimeoutS.
      .filter(k => !/^(Image|Command|Perf|RequestTimeoutS|TryTimeoutS)\b/.test(k))
      .sort()
  )
  const spec = appSpec('bare', {}, builtinDefaults().Perf)
  assert.equal(spec.health.path, APP_DEFAULTS.Health.Path)
  assert.equal(spec.resources.memoryMB, APP_DEFAULTS.Resources.MemoryMB)
  assert.deepEqual(spec.perf, { softRttMs: 100, hardRttMs: 1000 })
  assert.deepEqual(spec.traffic, {
    requestTimeoutS: undefined,
    tryTimeoutS: undefined,
    retry: { attempts: 2, on: ['error'], budgetPercent: 20 }
  })
})

test('roleDefaults keeps its one-argument form (members asks for both admin ports)', () => {
  assert.equal(roleDefaults('allocator').AdminListen, '127.0.0.1:7701')
  assert.equal(roleDefaults('proxy').AdminListen, '127.0.0.1:7702')
})

test('the generated reference: every row has a key, a type, a default and a meaning', () => {
  const rows = configReference()
    .split('\n')
    .filter(l => l.startsWith('|') && !l.startsWith('|---'))
  assert.ok(rows.length > 50)
  for (const row of rows) {
    // Cells split on the pipes that are not escaped (an enum's \| stays inside its cell).
    const cells = row
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map(c => c.trim())
    assert.equal(cells.length, 4, row)
    assert.ok(
      cells.every(c => c !== ''),
      row
    )
  }
  assert.match(configReference(), /^\| `Apps\.<name>\.Health\.IntervalMs` \| integer \(≥ 10, ≤ 600000\) \| `2000` \| /m)
  assert.match(configReference(), /^\| `KeyFile` \| string \| allocator `"~\/\.physarum\/allocator\.key"`; proxy /m)
})

test('Proxy.LocalFastPath: on by default; PHYSARUM_LOCAL_FAST_PATH turns it off (or on); another value is one line', () => {
  assert.equal(load('proxy').config.Proxy.LocalFastPath, true)
  const env = (v: string): LoadedConfig =>
    loadConfig({ role: 'proxy', noFile: true, env: { PHYSARUM_LOCAL_FAST_PATH: v } })
  for (const [v, want] of [
    ['0', false],
    ['false', false],
    ['1', true],
    ['true', true]
  ] as const) {
    const c = env(v)
    assert.equal(c.config.Proxy.LocalFastPath, want, v)
    assert.equal(c.sources.get('Proxy.LocalFastPath'), 'env')
  }
  // The rest of the Proxy section keeps its defaults beside the override.
  assert.equal(env('0').config.Proxy.Port, 1234)
  assert.throws(() => env('yes'), /^ConfigError: PHYSARUM_LOCAL_FAST_PATH must be 0, 1, true or false, not "yes"$/)
})
