// HTTP/1.1 beyond plain requests, through the whole path (client proxy → libp2p → allocator →
// app and back), with curl and node:http as the clients and a node:http app: trailers on
// chunked messages both ways, Expect: 100-continue answered by the app (a refused upload is
// never sent), and methods the hop does not carry answered with a clear status and reason.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startAllocator, startProxy, addrOf, waitFor } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const run = promisify(execFile)
const PSK = '8'.repeat(64)
const dir = mkdtempSync(join(tmpdir(), 'physarum-h11-'))
// The app: /trailers answers with declared trailers; /echo tells what it got (body, trailers,
// whether it was asked to continue); /upload refuses a body above 1 KB from its Expect alone.
const APP = join(dir, 'h11.cjs')
writeFileSync(
  APP,
  `const http = require('node:http')
const server = http.createServer((req, res) => serve(req, res))
server.on('checkContinue', (req, res) => {
  if (req.url === '/upload' && Number(req.headers['content-length']) > 1024) {
    let got = 0
    req.on('data', c => { got += c.length })
    res.writeHead(417, { 'content-type': 'text/plain', 'x-body-bytes-seen': String(got) })
    return res.end('too large: refused before the body\\n')
  }
  res.writeContinue()
  serve(req, res, true)
})
function serve(req, res, continued = false) {
  if (req.url === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-rows' })
    res.write('part one\\n')
    setTimeout(() => {
      res.write('part two\\n')
      res.addTrailers({ 'x-checksum': 'sha1-abc', 'x-rows': '2' })
      res.end()
    }, 20)
    return
  }
  const chunks = []
  req.on('data', c => chunks.push(c))
  req.on('end', () => {
    const body = JSON.stringify({ url: req.url, body: Buffer.concat(chunks).toString(), trailers: req.trailers,
      continued, expect: req.headers.expect ?? null })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}
server.listen(Number(process.env.PORT), '127.0.0.1')
`
)

interface Echo {
  url: string
  body: string
  trailers: Record<string, string>
  continued: boolean
  expect: string | null
}

describe('HTTP/1.1 trailers, 100-continue and methods through physarum', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let base: string

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: { h11: { Command: [process.execPath, APP], Health: { Path: '/healthz' }, IdleTimeoutS: 300 } },
      Allocator: {
        Runtime: 'process',
        MaxInstances: 4,
        MemoryMB: 1024,
        DrainTimeoutS: 1,
        RateLimit: { PerSecond: 100, Burst: 100 }
      }
    })
    proxy = await startProxy({ Psk: PSK, Bootstraps: [addrOf(alloc.agent)] })
    base = `http://${proxy.address}`
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
  })

  after(async () => {
    await proxy.stop()
    await alloc.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test("the app's trailers reach curl after the body (app → client)", async () => {
    // --raw: curl prints the chunked body as it came, so the trailer section is in it.
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', '--raw', `${base}/h11/trailers`])
    assert.match(stdout, /part one\r?\n/)
    assert.match(stdout, /part two\r?\n/)
    assert.match(stdout, /\r\n0\r\nx-checksum: sha1-abc\r\nx-rows: 2\r\n\r\n$/i, 'both trailers after the last chunk')
    // And node:http, a second client, reads them as trailers.
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpRequest(`${base}/h11/trailers`, resolve).on('error', reject).end()
    })
    assert.equal(res.headers.trailer, 'x-checksum, x-rows', 'the Trailer header is relayed')
    res.resume()
    await new Promise(r => res.once('end', r))
    assert.deepEqual(res.trailers, { 'x-checksum': 'sha1-abc', 'x-rows': '2' })
  })

  test("a client's trailers reach the app after its chunked body (client → app)", async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        `${base}/h11/echo`,
        { method: 'POST', headers: { 'transfer-encoding': 'chunked', trailer: 'x-digest' } },
        resolve
      )
      req.on('error', reject)
      req.write('hello ')
      req.write('world')
      req.addTrailers({ 'x-digest': 'md5-123' })
      req.end()
    })
    const chunks: Buffer[] = []
    for await (const c of res) chunks.push(c as Buffer)
    assert.equal(res.statusCode, 200, Buffer.concat(chunks).toString())
    const echo = JSON.parse(Buffer.concat(chunks).toString()) as Echo
    assert.equal(echo.body, 'hello world')
    assert.deepEqual(echo.trailers, { 'x-digest': 'md5-123' })
  })

  test('Expect: 100-continue reaches the app: a refused upload is never sent, an accepted one is', async () => {
    const big = join(dir, 'big.bin')
    writeFileSync(big, Buffer.alloc(256 * 1024, 7))
    // curl sends Expect: 100-continue itself and waits (here up to 10 s) for the 100 before the body.
    const refused = await run('curl', [
      ...['-sS', '--max-time', '20', '--expect100-timeout', '10', '-H', 'Expect: 100-continue'],
      ...['-o', '/dev/null', '-D', '-', '-w', 'uploaded=%{size_upload}\\n'],
      ...['--data-binary', `@${big}`, `${base}/h11/upload`]
    ])
    assert.match(refused.stdout, /^HTTP\/1\.1 417/m, "the app's own refusal")
    assert.match(refused.stdout, /^x-body-bytes-seen: 0/im)
    assert.match(refused.stdout, /^uploaded=0$/m, 'curl sent none of the body')
    const t0 = Date.now()
    const accepted = await run('curl', [
      ...['-sS', '--max-time', '20', '--expect100-timeout', '10', '-H', 'Expect: 100-continue'],
      ...['--data-binary', 'small body', `${base}/h11/echo`]
    ])
    const echo = JSON.parse(accepted.stdout) as Echo
    assert.equal(echo.body, 'small body')
    assert.equal(echo.continued, true, 'the app was asked and answered 100 Continue itself')
    assert.equal(echo.expect, '100-continue')
    assert.ok(Date.now() - t0 < 5000, 'the 100 came from the app at once, not after curl gave up waiting')
  })

  test('methods the hop does not carry get a clear status and a one-line reason', async () => {
    const connect = await run('curl', ['-sS', '--max-time', '10', '-X', 'CONNECT', '-i', `${base}/h11/x`])
    assert.match(connect.stdout, /^HTTP\/1\.1 501/m)
    assert.match(connect.stdout, /"code":"NOT_SUPPORTED"/)
    const unknown = await run('curl', ['-sS', '--max-time', '10', '-X', 'BREW', '-i', `${base}/h11/x`])
    assert.match(unknown.stdout, /^HTTP\/1\.1 501/m)
    assert.match(unknown.stdout, /method BREW is not supported/)
    // A method Node knows (WebDAV's) goes through to the app.
    const dav = await run('curl', ['-sS', '--max-time', '10', '-X', 'PROPFIND', `${base}/h11/echo`])
    assert.equal((JSON.parse(dav.stdout) as Echo).url, '/echo')
  })
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
