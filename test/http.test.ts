// Host and port formatting shared by the pools and health checks: an IPv6 instance
// address (a server-mode `--address [::1]:PORT`) must reach the instance, not throw.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { hostPort, listenOn } from '../src/http.js'
import { instancePool } from '../src/forward/serve.js'
import { checkOnce } from '../src/instances/health.js'
import { appSpec } from '../src/catalog/catalog.js'
import { builtinDefaults } from '../src/config/defaults.js'

test('hostPort brackets IPv6 hosts', () => {
  assert.equal(hostPort('127.0.0.1', 8080), '127.0.0.1:8080')
  assert.equal(hostPort('::1', 8080), '[::1]:8080')
})

test('an instance on ::1 is reached by its pool and passes its health check', async (t) => {
  const server = createServer((_req, res) => { res.end('ok') })
  try { await listenOn(server, '::1', 0) } catch { t.skip('no IPv6 loopback on this machine'); return }
  const port = (server.address() as { port: number }).port
  const pool = instancePool('::1', port)
  try {
    const r = await pool.request({ path: '/', method: 'GET' })
    assert.equal(await r.body.text(), 'ok')
    assert.equal(await checkOnce(appSpec('v6', { Port: port, Health: { Path: '/' } }, builtinDefaults().Perf), '::1', port, 2000), true)
  } finally {
    await pool.close()
    server.close()
  }
})
