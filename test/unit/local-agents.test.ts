// The per-user record of this host's daemons (src/cluster/local-agents.ts) and the config
// rule that lets server-mode proxies share a host: a record per live process, dead ones
// pruned, allocators first; a server-mode proxy's entrypoint on a free port unless one is set.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { localAgents, registerLocal, runtimeDir, unregisterLocal } from '../../src/cluster/local-agents.js'
import { loadConfig } from '../../src/config/load.js'

test('records, lists allocators first, prunes the records of processes that are gone', t => {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-run-'))
  t.after(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const mine = registerLocal({ role: 'proxy', peer: 'P1', admin: '127.0.0.1:7702', http: '127.0.0.1:1234' }, dir)
  assert.ok(mine !== undefined)
  assert.equal(statSync(mine).mode & 0o777, 0o600)
  // Another live process (this test's parent) as an allocator, and a dead one.
  writeFileSync(
    join(dir, `${process.ppid}.json`),
    JSON.stringify({
      pid: process.ppid,
      role: 'allocator',
      peer: 'A1',
      admin: '127.0.0.1:7701',
      startedAt: new Date().toISOString()
    })
  )
  const dead = spawnSync(process.execPath, ['-e', '0']).pid
  writeFileSync(
    join(dir, `${dead}.json`),
    JSON.stringify({ pid: dead, role: 'allocator', peer: 'D', admin: '127.0.0.1:1', startedAt: '' })
  )
  writeFileSync(join(dir, '999999999.json'), 'not json')
  const list = localAgents(dir)
  assert.deepEqual(
    list.map(a => a.peer),
    ['A1', 'P1']
  )
  assert.deepEqual(
    readdirSync(dir).sort(),
    [`${process.pid}.json`, `${process.ppid}.json`].sort(),
    'the dead and the malformed are removed'
  )
  unregisterLocal(mine)
  assert.deepEqual(
    localAgents(dir).map(a => a.peer),
    ['A1']
  )
})

test('the runtime directory: PHYSARUM_RUNTIME_DIR, else XDG_RUNTIME_DIR/physarum, else ~/.physarum/run', () => {
  assert.equal(runtimeDir({ PHYSARUM_RUNTIME_DIR: '/x' }), '/x')
  assert.equal(runtimeDir({ XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/physarum')
  assert.match(runtimeDir({}), /\.physarum\/run$/)
})

test('a server-mode proxy takes a free entrypoint port and no key file, unless a port is set', () => {
  const load = (serverMode: boolean, port?: number) =>
    loadConfig({ role: 'proxy', flags: port === undefined ? {} : { port }, env: {}, noFile: true, serverMode }).config
  assert.equal(load(true).Proxy.Port, 0)
  assert.equal(load(true).KeyFile, undefined)
  assert.equal(load(true, 1300).Proxy.Port, 1300)
  assert.equal(load(true, 1300).KeyFile, '~/.physarum/proxy-1300.key')
  assert.equal(load(false).Proxy.Port, 1234, 'a client proxy keeps Proxy.Port')
})
