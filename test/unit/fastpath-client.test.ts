// The proxy's side of the local fast path against a real HTTP server in the place of an allocator's admin API (found
// through a runtime record, as a daemon's): its syncs, four a second, share one keep-alive connection instead of
// opening one each, and what the answer lists is reached straight.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { FastPathClient } from '../../src/fastpath/client.js'
import { FASTPATH_PATH } from '../../src/fastpath/protocol.js'
import { SYNC_MS } from '../../src/fastpath/constants.js'
import type { Logger } from '../../src/util/log.js'

const quiet: Logger = { error() {}, warn() {}, info() {}, debug() {}, scope: () => quiet, setLevel() {} }
const ALLOCATOR = '12D3KooWHTfHCrJF6sYQueNZYpLYFB241fax9AisjLWppWU2fkjL'
const PROXY = '12D3KooWDFae51cQDG9ex9HxDLG2ctwVhZYQYnmNq8pezh4kzpoJ'
const TOKEN = 'ab'.repeat(32)

test('the syncs with an allocator share one keep-alive connection to its admin API', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'physarum-fastpath-client-'))
  let connections = 0
  let syncs = 0
  let seq = 0
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      assert.equal(req.url, FASTPATH_PATH)
      assert.equal(req.headers.authorization, `Bearer ${TOKEN}`)
      assert.equal((JSON.parse(body) as { proxy: string }).proxy, PROXY)
      syncs++
      const answer = {
        v: 1,
        peer: ALLOCATOR,
        seq: ++seq,
        draining: false,
        instances: [{ id: 'i1', app: 'hello', host: '127.0.0.1', port: 9, protocol: 'http1' }]
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer))
    })
  })
  server.keepAliveTimeout = 5000
  server.on('connection', () => connections++)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const tokenFile = join(dir, 'admin.token')
  writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 })
  const run = join(dir, 'run')
  mkdirSync(run, { mode: 0o700 })
  // This process stands in for the allocator: its record has to name a live pid.
  writeFileSync(
    join(run, `${process.pid}.json`),
    JSON.stringify({
      pid: process.pid,
      role: 'allocator',
      peer: ALLOCATOR,
      admin: `127.0.0.1:${port}`,
      tokenFile,
      startedAt: new Date().toISOString()
    })
  )
  const client = new FastPathClient(
    { self: PROXY, log: quiet, isMember: peer => peer === ALLOCATOR },
    { enabled: true, runtimeDir: run }
  )
  try {
    client.start()
    await sleep(SYNC_MS * 6 + 100)
    assert.ok(syncs >= 5, `synced ${syncs} times`)
    assert.equal(connections, 1, `${syncs} syncs over ${connections} connections`)
    const t = client.target(ALLOCATOR, 'hello', 'i1')
    assert.equal(t?.port, 9)
  } finally {
    await client.stop()
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  }
})
