// Host and port formatting shared by the pools and health checks: an IPv6 instance
// address (a server-mode `--address [::1]:PORT`) must reach the instance, not throw.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { finished } from 'node:stream'
import { hostPort, listenOn, onResponseOver } from '../../src/util/http.js'
import { instancePool } from '../../src/forward/serve.js'
import { checkOnce } from '../../src/catalog/health.js'
import { appSpec } from '../../src/catalog/catalog.js'
import { builtinDefaults } from '../../src/config/defaults.js'
import { setTimeout as sleep } from 'node:timers/promises'

test('hostPort brackets IPv6 hosts', () => {
  assert.equal(hostPort('127.0.0.1', 8080), '127.0.0.1:8080')
  assert.equal(hostPort('::1', 8080), '[::1]:8080')
})

test('an instance on ::1 is reached by its pool and passes its health check', async t => {
  const server = createServer((_req, res) => {
    res.end('ok')
  })
  try {
    await listenOn(server, '::1', 0)
  } catch {
    t.skip('no IPv6 loopback on this machine')
    return
  }
  const port = (server.address() as { port: number }).port
  const pool = instancePool('::1', port)
  try {
    const r = await pool.request({ path: '/', method: 'GET' })
    assert.equal(await r.body.text(), 'ok')
    assert.equal(
      await checkOnce(appSpec('v6', { Port: port, Health: { Path: '/' } }, builtinDefaults().Perf), '::1', port, 2000),
      true
    )
  } finally {
    await pool.close()
    server.close()
  }
})

test('onResponseOver: responses queued behind a pipelined request are over, for every listener, when the client leaves', async () => {
  // A response waiting behind an earlier one gets no 'close' when the connection drops, and
  // destroying it emits nothing: undici's stream() waits on finished(res) and never settled,
  // so the proxy counted such requests in flight for good (found by the hostile suite).
  const slow: ServerResponse[] = []
  let queued = 0
  let over = 0
  let finishedHeard = 0
  const server = createServer((req, res) => {
    if (req.url === '/slow') {
      slow.push(res)
      onResponseOver(req, res, () => {
        over++
      })
      return
    }
    // As undici's stream() does: it waits on finished(res) from the upstream's head on.
    finished(res, { readable: false }, () => {
      finishedHeard++
    })
    onResponseOver(req, res, () => {
      over++
    })
    // Some upstream answers are over, some still streaming, when the client leaves.
    if (queued++ % 2 === 0) res.end('answered, but queued behind /slow')
    else {
      res.writeHead(200)
      res.write('part of an answer queued behind /slow')
    }
  })
  const address = await listenOn(server, '127.0.0.1', 0)
  const [host, port] = address.split(':')
  const s = connect(Number(port), host)
  s.on('error', () => {})
  try {
    s.write('GET /slow HTTP/1.1\r\nHost: t\r\n\r\n' + 'GET /fast HTTP/1.1\r\nHost: t\r\n\r\n'.repeat(5))
    for (let i = 0; i < 200 && queued < 5; i++) await sleep(10)
    assert.equal(queued, 5, 'the pipelined requests reached the handler')
    s.destroy()
    for (let i = 0; i < 200 && (over < 6 || finishedHeard < 5); i++) await sleep(10)
    assert.equal(over, 6, 'onResponseOver called once for each response')
    assert.equal(finishedHeard, 5, 'stream.finished settled for each queued response')
  } finally {
    s.destroy()
    for (const r of slow) r.destroy()
    server.close()
  }
})
