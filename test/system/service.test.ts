// `physarum service install|remove|status` (issue 16, item 7) as a real child process, into a test-only --root: the
// units run the executable under test, `systemd-analyze verify` accepts them without a warning (where it exists),
// the enable links are what systemctl makes, remove takes back what install wrote; and without systemd, a one-line
// refusal. conf/*.service are the units for /usr/local/bin/physarum.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BIN, ROOT, runCli } from '../helpers/cli.js'
import { allocatorUnit, proxyUnit } from '../../src/service/units.js'
import { assertNothingLeft } from '../helpers/orphans.js'

let dir: string
const units = (): string => join(dir, 'etc/systemd/system')
const wants = (): string => join(units(), 'multi-user.target.wants')
/** What the units must run: the packaged executable, or node with bin/physarum. */
const EXEC = BIN.endsWith('/bin/physarum') ? `${process.execPath} ${resolve(BIN)}` : resolve(BIN)
const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'physarum-service-'))
})
after(() => {
  rmSync(dir, { recursive: true, force: true })
})

/** systemd-analyze verify on a copy of the unit named `as` (a template is verified as one of its instances). */
function verify(file: string, as: string): void {
  const vdir = mkdtempSync(join(tmpdir(), 'physarum-verify-'))
  try {
    copyFileSync(file, join(vdir, as))
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(vdir, as)], { encoding: 'utf8', timeout: 30000 })
    assert.equal(r.status, 0, `systemd-analyze verify ${as}: ${r.stderr}`)
    assert.equal(r.stderr.trim(), '', `systemd-analyze verify ${as} warns`)
  } finally {
    rmSync(vdir, { recursive: true, force: true })
  }
}

test('service install --root: units for this executable, enabled, accepted by systemd-analyze verify', async t => {
  const a = await runCli(['service', 'install', '--root', dir], { cwd: ROOT })
  assert.equal(a.code, 0, a.stderr)
  assert.match(a.stdout, /^wrote .*physarum-allocator\.service \(runs /m)
  assert.match(a.stdout, /^enabled physarum-allocator\.service/m)
  const p = await runCli(['service', 'install', 'proxy', '--port', '1235', '--root', dir], { cwd: ROOT })
  assert.equal(p.code, 0, p.stderr)
  assert.equal((await runCli(['service', 'install', 'proxy', '-p', '1236', '--root', dir])).code, 0)

  const alloc = readFileSync(join(units(), 'physarum-allocator.service'), 'utf8')
  const proxy = readFileSync(join(units(), 'physarum-proxy@.service'), 'utf8')
  assert.match(alloc, new RegExp(`^ExecStart=${EXEC} allocator --configfile /etc/physarum/conf.json `, 'm'))
  assert.match(proxy, new RegExp(`^ExecStart=/bin/sh -c 'exec ${EXEC} proxy --port %i `, 'm'))
  for (const u of [alloc, proxy]) {
    assert.match(u, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
    assert.match(u, /^KillSignal=SIGTERM$/m)
    assert.match(u, /^Restart=on-failure$/m)
    assert.match(u, /^WantedBy=multi-user\.target$/m)
  }
  // What `systemctl enable` makes: links in the target's .wants, a template's instances to the template.
  assert.deepEqual(readdirSync(wants()).sort(), [
    'physarum-allocator.service',
    'physarum-proxy@1235.service',
    'physarum-proxy@1236.service'
  ])
  assert.equal(
    readlinkSync(join(wants(), 'physarum-allocator.service')),
    '/etc/systemd/system/physarum-allocator.service'
  )
  assert.equal(
    readlinkSync(join(wants(), 'physarum-proxy@1235.service')),
    '/etc/systemd/system/physarum-proxy@.service'
  )

  if (!analyze) {
    t.diagnostic('systemd-analyze not found: skipped the verify check (the units were checked by content)')
    return
  }
  verify(join(units(), 'physarum-allocator.service'), 'physarum-allocator.service')
  verify(join(units(), 'physarum-proxy@.service'), 'physarum-proxy@1235.service')
})

test('service status --root lists the units, installed and enabled; --json', async () => {
  const r = await runCli(['service', 'status', '--root', dir])
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.match(lines[0], /^UNIT\s+FILE\s+ENABLED\s+ACTIVE\s+RUNS$/)
  assert.equal(lines.length, 4, r.stdout)
  assert.match(lines[1], /^physarum-allocator\.service\s+\S+physarum-allocator\.service\s+enabled\s+-\s+/)
  assert.ok(lines[1].endsWith(EXEC), lines[1])
  assert.match(lines[2], /^physarum-proxy@1235\.service\s+\S+physarum-proxy@\.service\s+enabled/)
  const j = await runCli(['service', 'status', 'proxy', '--port', '1236', '--root', dir, '--json'])
  const rows = JSON.parse(j.stdout) as Array<{ unit: string; enabled: string; runs: string }>
  assert.deepEqual(
    rows.map(x => [x.unit, x.enabled, x.runs]),
    [['physarum-proxy@1236.service', 'enabled', EXEC]]
  )
})

test('service remove --root takes back what install wrote; the proxy template stays while another uses it', async () => {
  const p = await runCli(['service', 'remove', 'proxy', '--port', '1235', '--root', dir])
  assert.equal(p.code, 0, p.stderr)
  assert.match(p.stdout, /^disabled physarum-proxy@1235\.service$/m)
  assert.match(p.stdout, /^kept .*physarum-proxy@\.service: still used by physarum-proxy@1236$/m)
  assert.ok(existsSync(join(units(), 'physarum-proxy@.service')))
  assert.equal((await runCli(['service', 'remove', 'proxy', '-p', '1236', '--root', dir])).code, 0)
  const a = await runCli(['service', 'remove', 'allocator', '--root', dir])
  assert.equal(a.code, 0, a.stderr)
  assert.deepEqual(readdirSync(wants()), [])
  assert.deepEqual(readdirSync(units()).sort(), ['multi-user.target.wants'])
  const again = await runCli(['service', 'remove', '--root', dir])
  assert.equal(again.stdout.trim(), 'physarum-allocator.service is not installed')
})

test('bad input and no systemd: one-line errors, exit 2', async t => {
  const port = await runCli(['service', 'install', 'allocator', '--port', '1235', '--root', dir])
  assert.equal(port.code, 2)
  assert.equal(port.stderr, 'physarum: --port is for a proxy: physarum service … proxy --port N\n')
  const role = await runCli(['service', 'install', 'database', '--root', dir])
  assert.equal(role.code, 2)
  assert.equal(role.stderr.trim().split('\n').length, 1, role.stderr)
  assert.match(role.stderr, /database/)
  if (existsSync('/run/systemd/system')) {
    t.diagnostic('systemd runs on this host: skipped the refusal check')
    return
  }
  for (const sub of ['install', 'remove', 'status']) {
    const r = await runCli(['service', sub])
    assert.equal(r.code, 2, `${sub}: ${r.stderr}`)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^physarum: systemd does not run on this host \(no \/run\/systemd\/system\).*--root DIR/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
  }
})

test('conf/*.service are the units for /usr/local/bin/physarum', () => {
  const o = { exec: '/usr/local/bin/physarum', protectHome: 'true' as const }
  assert.equal(readFileSync(join(ROOT, 'conf/physarum-allocator.service'), 'utf8'), allocatorUnit(o))
  assert.equal(readFileSync(join(ROOT, 'conf/physarum-proxy@.service'), 'utf8'), proxyUnit(o))
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
