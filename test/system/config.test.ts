// Configuration: every bad input is one line on stderr with exit code 2; layering
// default < role default < file < env < flag; the original PhysarumSM conf.json; config
// init/validate; the role defaults the daemons run with (key files, admin ports).
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  mkdtempSync,
  mkdirSync,
  writeFileSync,
  rmSync,
  statSync,
  chmodSync,
  readFileSync,
  existsSync,
  readdirSync
} from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'
import { runCli, spawnCli, killAll, ROOT } from '../helpers/cli.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import { withReference } from '../../src/config/reference.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const PEER = '12D3KooWRULjJGiBa2sLg5s1vebmHTzsREhiY4PDbXyDBe5qGjud'
const BOOT_A = `/ip4/192.0.2.1/tcp/4001/p2p/${PEER}`
const BOOT_B = `/ip4/192.0.2.2/tcp/4001/p2p/${PEER}`
const BOOT_C = `/ip4/192.0.2.3/tcp/4001/p2p/${PEER}`

let dir: string
const file = (name: string, text: string, mode = 0o644): string => {
  const p = join(dir, name)
  writeFileSync(p, text)
  chmodSync(p, mode)
  return p
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-config-'))
})
after(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

/** Runs the CLI expecting a usage error: exit 2 and exactly one line, no stack trace. */
async function expectOneLineError(args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCli(args, { env: { ...env, HOME: dir }, cwd: dir })
  assert.equal(r.code, 2, `exit code for ${args.join(' ')}: ${r.stderr}`)
  const lines = r.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  assert.match(lines[0], pattern)
  return lines[0]
}

describe('config errors are one line and exit 2', () => {
  test('missing file', async () => {
    await expectOneLineError(['config', 'show', '--configfile', join(dir, 'nope.json')], /nope\.json not found/)
  })
  test('invalid JSON names line and column', async () => {
    const f = file('bad.json', '{\n  "Perf": {\n    "SoftReq": { "RTT": 100, }\n  }\n}\n')
    await expectOneLineError(['config', 'show', '--configfile', f], /invalid JSON at line 3, column \d+/)
  })
  test('unknown key is named, with a suggestion for a near miss', async () => {
    const f = file('typo.json', JSON.stringify({ Bootstrap: [] }))
    await expectOneLineError(
      ['config', 'show', '--configfile', f],
      /unknown key Bootstrap \(did you mean Bootstraps\?\)/
    )
    const g = file('typo2.json', JSON.stringify({ Perf: { SoftReq: { Rtt: 5 } } }))
    await expectOneLineError(
      ['config', 'show', '--configfile', g],
      /unknown key Perf\.SoftReq\.Rtt \(did you mean RTT\?\)/
    )
  })
  test('wrong type names the JSON path', async () => {
    const f = file('type.json', JSON.stringify({ Perf: { SoftReq: { RTT: 'fast' } } }))
    await expectOneLineError(['config', 'show', '--configfile', f], /Perf\.SoftReq\.RTT: must be number, got string/)
  })
  test('out of range names the JSON path', async () => {
    const f = file('range.json', JSON.stringify({ Proxy: { Port: 70000 } }))
    await expectOneLineError(['config', 'show', '--configfile', f], /Proxy\.Port: must be <= 65535, got 70000/)
    const g = file('app.json', JSON.stringify({ Apps: { web: { Port: 0 } } }))
    await expectOneLineError(['config', 'show', '--configfile', g], /Apps\.web\.Port: must be >= 1/)
  })
  test('invalid multiaddr, in the file and in a flag', async () => {
    const f = file('ma.json', JSON.stringify({ Bootstraps: ['/ip4/999.0.0.1/tcp/4001'] }))
    await expectOneLineError(['config', 'show', '--configfile', f], /Bootstraps\[0\].*not a valid multiaddr/)
    await expectOneLineError(
      ['config', 'show', '--configfile', file('ok.json', '{}'), '--bootstrap', '/ip4/192.0.2.1/tcp/4001'],
      /no \/p2p\/<peer id> part/
    )
  })
  test('unreadable or exposed PSK file', async () => {
    const ok = file('ok2.json', '{}')
    await expectOneLineError(
      ['config', 'show', '--configfile', ok, '--psk-file', join(dir, 'missing.psk')],
      /PSK file .*missing\.psk cannot be read: ENOENT/
    )
    const exposed = file('exposed.psk', 'a'.repeat(64), 0o644)
    await expectOneLineError(
      ['config', 'show', '--configfile', ok, '--psk-file', exposed],
      /readable by group or others \(mode 644\)/
    )
  })
  test('bad flag and bad flag value', async () => {
    await expectOneLineError(['config', 'show', '--no-such-flag'], /no-such-flag.*\(see --help\)/)
    await expectOneLineError(['allocator', '--log-level', 'loud'], /loud/)
  })
  test('a daemon refuses an exposed key file', async () => {
    const key = file('id.key', 'x', 0o640)
    await expectOneLineError(
      [
        'allocator',
        '--configfile',
        file('ok3.json', '{}'),
        '--keyfile',
        key,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--admin',
        '127.0.0.1:0'
      ],
      /key file .* readable by group or others/
    )
  })
})

describe('layering', () => {
  test('default < file < env < flag, with sources', () => {
    const f = file('layers.json', JSON.stringify({ Bootstraps: [BOOT_A], Log: { Level: 'debug' } }))
    const d = loadConfig({ role: 'allocator', noFile: true, env: {} })
    assert.deepEqual(d.config.Bootstraps, [])
    assert.equal(d.sources.get('Bootstraps'), 'default')

    const fl = loadConfig({ role: 'allocator', flags: { configfile: f }, env: {} })
    assert.deepEqual(fl.config.Bootstraps, [BOOT_A])
    assert.equal(fl.sources.get('Bootstraps'), 'file')
    assert.equal(fl.config.Log.Level, 'debug')
    assert.equal(fl.config.Log.Format, 'text', 'unset keys keep their default')
    assert.equal(fl.sources.get('Log.Format'), 'default')

    const e = loadConfig({
      role: 'allocator',
      flags: { configfile: f },
      env: { PHYSARUM_BOOTSTRAPS: `${BOOT_B}, ${BOOT_C}` }
    })
    assert.deepEqual(e.config.Bootstraps, [BOOT_B, BOOT_C])
    assert.equal(e.sources.get('Bootstraps'), 'env')

    const orig = loadConfig({
      role: 'allocator',
      flags: { configfile: f },
      env: { P2P_BOOTSTRAPS: `${BOOT_B} ${BOOT_C}` }
    })
    assert.deepEqual(orig.config.Bootstraps, [BOOT_B, BOOT_C], 'the original P2P_BOOTSTRAPS, space-separated')

    const fg = loadConfig({
      role: 'allocator',
      flags: { configfile: f, bootstrap: [BOOT_C], 'log-level': 'warn' },
      env: { PHYSARUM_BOOTSTRAPS: BOOT_B }
    })
    assert.deepEqual(fg.config.Bootstraps, [BOOT_C])
    assert.equal(fg.sources.get('Bootstraps'), 'flag')
    assert.equal(fg.config.Log.Level, 'warn')
    assert.equal(fg.sources.get('Log.Level'), 'flag')
  })

  test('a PSK from the environment replaces a PskFile from the file', () => {
    const psk = file('cluster.psk', 'b'.repeat(64), 0o600)
    const f = file('pskfile.json', JSON.stringify({ PskFile: psk }))
    assert.equal(loadConfig({ role: 'allocator', flags: { configfile: f }, env: {} }).config.PskFile, psk)
    const e = loadConfig({
      role: 'allocator',
      flags: { configfile: f },
      env: { P2P_PSK: 'a passphrase of the original' }
    })
    assert.equal(e.config.Psk, 'a passphrase of the original')
    assert.equal(e.config.PskFile, undefined)
    assert.equal(e.sources.get('Psk'), 'env')
  })

  test('the original PhysarumSM conf.json loads unchanged, RTT in milliseconds', () => {
    const f = file(
      'original.json',
      JSON.stringify({
        Perf: { SoftReq: { RTT: 100 }, HardReq: { RTT: 1000 } },
        Bootstraps: ['/ip4/192.0.2.10/tcp/4001/ipfs/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN']
      })
    )
    const c = loadConfig({ role: 'allocator', flags: { configfile: f }, env: {} }).config
    assert.equal(c.Perf.SoftReq.RTT, 100)
    assert.equal(c.Perf.HardReq.RTT, 1000)
    assert.equal(c.Bootstraps.length, 1)
  })

  test('the shipped conf/conf.json is valid', () => {
    assert.doesNotThrow(() =>
      loadConfig({
        role: 'allocator',
        flags: { configfile: new URL('../../../conf/conf.json', import.meta.url).pathname },
        env: {}
      })
    )
  })

  test('the example multi-host config conf/cluster.example.json is valid (with its PSK file in place)', () => {
    const example = readFileSync(join(ROOT, 'conf/cluster.example.json'), 'utf8')
    const psk = file('example.psk', 'ab'.repeat(32), 0o600)
    const conf = file('example.json', example.replace('/etc/physarum/psk', psk))
    const c = loadConfig({ role: 'allocator', flags: { configfile: conf }, env: {} }).config
    assert.equal(c.Bootstraps.length, 3)
    assert.deepEqual(Object.keys(c.Apps), ['hello-world-server', 'thumbnails'])
  })

  test(
    'the systemd units pass systemd-analyze verify',
    { skip: spawnSync('systemd-analyze', ['--version']).status === 0 ? false : 'no systemd-analyze on this machine' },
    () => {
      // The units name /usr/local/bin/physarum; verify them against a copy that points at this executable.
      const units = join(dir, 'units')
      mkdirSync(units)
      for (const [from, to] of [
        ['physarum-allocator.service', 'physarum-allocator.service'],
        ['physarum-proxy@.service', 'physarum-proxy@1234.service']
      ]) {
        writeFileSync(
          join(units, to),
          readFileSync(join(ROOT, 'conf', from), 'utf8').replaceAll('/usr/local/bin/physarum', process.execPath)
        )
      }
      const r = spawnSync(
        'systemd-analyze',
        ['verify', join(units, 'physarum-allocator.service'), join(units, 'physarum-proxy@1234.service')],
        { encoding: 'utf8' }
      )
      assert.equal(r.status, 0, r.stderr)
      assert.equal(r.stderr.trim(), '')
    }
  )

  test('SoftReq above HardReq is refused', () => {
    const f = file('soft.json', JSON.stringify({ Perf: { SoftReq: { RTT: 500 }, HardReq: { RTT: 100 } } }))
    assert.throws(
      () => loadConfig({ role: 'allocator', flags: { configfile: f }, env: {} }),
      (e: unknown) => e instanceof ConfigError && /must not exceed/.test(e.message)
    )
  })
})

describe('config commands', () => {
  test('config init writes 0600 with a fresh PSK, refuses to overwrite, and validates', async () => {
    const out = join(dir, 'init', 'conf.json')
    const r1 = await runCli(['config', 'init', '--output', out], { cwd: dir })
    assert.equal(r1.code, 0, r1.stderr)
    assert.equal(statSync(out).mode & 0o777, 0o600)
    const first = JSON.parse(readFileSync(out, 'utf8')) as { Psk: string }
    assert.match(first.Psk, /^[0-9a-f]{64}$/)
    const r2 = await runCli(['config', 'init', '--output', out], { cwd: dir })
    assert.equal(r2.code, 2)
    assert.match(r2.stderr, /exists; pass --force/)
    const r3 = await runCli(['config', 'init', '--output', out, '--force'], { cwd: dir })
    assert.equal(r3.code, 0)
    assert.notEqual((JSON.parse(readFileSync(out, 'utf8')) as { Psk: string }).Psk, first.Psk, 'a fresh PSK each time')
    const v = await runCli(['config', 'validate', out], { cwd: dir })
    assert.equal(v.code, 0, v.stderr)
    assert.match(v.stdout, /valid/)
    // One file for every host: each role keeps its own Listen (a proxy beside the allocator).
    assert.equal('Listen' in first, false)
    for (const [role, listen] of [
      ['allocator', '/ip4/0.0.0.0/tcp/4001'],
      ['proxy', '/ip4/0.0.0.0/tcp/0']
    ]) {
      const s = await runCli(['config', 'show', '--configfile', out, '--json', '--role', role], { cwd: dir })
      assert.deepEqual((JSON.parse(s.stdout) as { Listen: string[] }).Listen, [listen], role)
    }
  })

  test('config validate lists every error and exits 2', async () => {
    const f = file('many.json', JSON.stringify({ Bootstrap: [], Proxy: { Port: -1 }, Log: { Level: 'loud' } }))
    const r = await runCli(['config', 'validate', f], { cwd: dir })
    assert.equal(r.code, 2)
    const lines = r.stderr.trimEnd().split('\n')
    assert.equal(lines.length, 3, r.stderr)
    assert.match(r.stderr, /unknown key Bootstrap/)
    assert.match(r.stderr, /Proxy\.Port/)
    assert.match(r.stderr, /Log\.Level: must be one of/)
  })

  test('config show --sources and --json; the PSK stays hidden', async () => {
    const f = file('show.json', JSON.stringify({ Psk: 'c'.repeat(64), Proxy: { Port: 4321 } }))
    const r = await runCli(['config', 'show', '--configfile', f, '--sources', '--log-level', 'debug'], {
      cwd: dir,
      env: { PHYSARUM_BOOTSTRAPS: BOOT_A }
    })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /Proxy\.Port\s+= 4321\s+\(file .*show\.json\)/)
    assert.match(r.stdout, /Bootstraps\s+= .*\(env\)/)
    assert.match(r.stdout, /Log\.Level\s+= "debug"\s+\(flag\)/)
    assert.match(r.stdout, /Perf\.SoftReq\.RTT\s+= 100\s+\(default\)/)
    assert.doesNotMatch(r.stdout, /cccccccc/)
    const j = await runCli(['config', 'show', '--configfile', f, '--json', '--sources'], { cwd: dir })
    const body = JSON.parse(j.stdout) as { config: { Proxy: { Port: number } }; sources: Record<string, string> }
    assert.equal(body.config.Proxy.Port, 4321)
    assert.match(body.sources['Proxy.Port'], /^file /)
  })

  test('--help (and -h) and --version on every command', async () => {
    for (const cmd of [
      [],
      ['allocator'],
      ['proxy'],
      ['members'],
      ['config', 'show'],
      ['config', 'validate'],
      ['config', 'init']
    ]) {
      const h = await runCli([...cmd, '--help'], { cwd: dir })
      assert.equal(h.code, 0, `${cmd.join(' ')} --help: ${h.stderr}`)
      assert.match(h.stdout, /USAGE/)
      const short = await runCli([...cmd, '-h'], { cwd: dir })
      assert.equal(short.code, 0, `${cmd.join(' ')} -h: ${short.stderr}`)
      assert.equal(short.stdout, h.stdout, '-h is --help')
      const v = await runCli([...cmd, '--version'], { cwd: dir })
      assert.equal(v.code, 0, `${cmd.join(' ')} --version: ${v.stderr}`)
      assert.match(v.stdout, /physarum\/\d+\.\d+\.\d+/)
    }
  })
})

describe('role defaults', () => {
  test("config show --sources names the role's defaults and the flags (default role: allocator)", async () => {
    const a = await runCli(['config', 'show', '--configfile', file('role.json', '{}'), '--sources'], {
      cwd: dir,
      env: { HOME: dir }
    })
    assert.equal(a.code, 0, a.stderr)
    assert.match(a.stdout, /^Listen\s+= \["\/ip4\/0\.0\.0\.0\/tcp\/4001"\]\s+\(default for allocator\)$/m)
    assert.match(a.stdout, /^KeyFile\s+= "~\/\.physarum\/allocator\.key"\s+\(default for allocator\)$/m)
    assert.match(a.stdout, /^Admin\.Listen\s+= "127\.0\.0\.1:7701"\s+\(default for allocator\)$/m)
    const p = await runCli(
      ['config', 'show', '--configfile', file('role.json', '{}'), '--sources', '--role', 'proxy', '--port', '1235'],
      { cwd: dir, env: { HOME: dir } }
    )
    assert.equal(p.code, 0, p.stderr)
    assert.match(p.stdout, /^Proxy\.Port\s+= 1235\s+\(flag\)$/m)
    assert.match(p.stdout, /^KeyFile\s+= "~\/\.physarum\/proxy-1235\.key"\s+\(default for proxy\)$/m)
    assert.match(p.stdout, /^Admin\.Listen\s+= "127\.0\.0\.1:7702"\s+\(default for proxy\)$/m)
    assert.match(p.stdout, /^Listen\s+= \["\/ip4\/0\.0\.0\.0\/tcp\/0"\]\s+\(default for proxy\)$/m)
  })

  test("a file's values win over the role's; an observer never gets the file's KeyFile", async () => {
    const f = file(
      'shared.json',
      JSON.stringify({
        Listen: ['/ip4/127.0.0.1/tcp/4002'],
        KeyFile: '/etc/physarum/allocator.key',
        Proxy: { Port: 1300 }
      })
    )
    const p = await runCli(['config', 'show', '--configfile', f, '--json', '--sources', '--role', 'proxy'], {
      cwd: dir
    })
    interface Shown {
      role: string
      config: { Listen: string[]; KeyFile?: string }
      sources: Record<string, string>
    }
    const body = JSON.parse(p.stdout) as Shown
    assert.equal(body.role, 'proxy')
    assert.deepEqual(body.config.Listen, ['/ip4/127.0.0.1/tcp/4002'])
    assert.match(body.sources.Listen, /^file /)
    assert.equal(body.config.KeyFile, '/etc/physarum/allocator.key')
    const o = await runCli(['config', 'show', '--configfile', f, '--json', '--role', 'observer'], { cwd: dir })
    assert.equal((JSON.parse(o.stdout) as { KeyFile?: string }).KeyFile, undefined)
    const e = await runCli(['config', 'show', '--configfile', f, '--json', '--ephemeral'], { cwd: dir })
    assert.equal((JSON.parse(e.stdout) as { KeyFile?: string }).KeyFile, undefined)
  })

  test(
    "a proxy's key file is named for its port, positional or --port; port 0 and members make none (real CLI)",
    { timeout: 60000 },
    async () => {
      const home = join(dir, 'home-keys')
      mkdirSync(home)
      const conf = file('keys.json', '{}')
      // Key files only: the daemons' runtime records live beside them (~/.physarum/run).
      const keys = (): string[] =>
        existsSync(join(home, '.physarum'))
          ? readdirSync(join(home, '.physarum'))
              .filter(n => n.endsWith('.key'))
              .sort()
          : []
      const port = await reservePort()
      for (const args of [
        ['proxy', String(port)],
        ['proxy', '--port', String(port), '--bind', '127.0.0.1'],
        // Any free port: no stable identity (two such proxies would otherwise share one).
        ['proxy', '--port', '0']
      ]) {
        const d = spawnCli(
          [...args, '--configfile', conf, '--listen', '/ip4/127.0.0.1/tcp/0', '--admin', '127.0.0.1:0'],
          { cwd: home, env: { HOME: home, XDG_RUNTIME_DIR: '' } }
        )
        await d.waitFor(/proxy listening on http:\/\/127\.0\.0\.1:\d+/)
        d.child.kill('SIGTERM')
        await d.exited
      }
      assert.deepEqual(
        keys(),
        [`proxy-${port}.key`],
        `both runs on ${port} used ~/.physarum/proxy-${port}.key, port 0 none`
      )
      const m = await runCli(
        [
          'members',
          '--configfile',
          conf,
          '--agent',
          '127.0.0.1:1',
          '--bootstrap',
          `/ip4/127.0.0.1/tcp/1/p2p/${PEER}`,
          '--wait',
          '0'
        ],
        { cwd: home, env: { HOME: home } }
      )
      assert.equal(m.code, 1, m.stderr)
      assert.deepEqual(keys(), [`proxy-${port}.key`], 'the observer made no key file')
    }
  )
})

test('the README config reference matches the schema (npm run docs regenerates it)', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  assert.equal(readme, withReference(readme), 'README.md is out of date: run npm run docs')
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
