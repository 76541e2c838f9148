// The serving side's HTTP/1.1 byte pipe (src/forward/pipe.ts) through the whole libp2p path (client proxy with the
// local fast path off → libp2p → allocator → app), with curl as the client: chunked upload and download, keep-alive
// reuse of the app connection, HEAD and 204 (no body, the stream still in step), an early answer to an upload, and
// 100 MB each way with flat memory; then raw bytes on a forwarding stream: smuggling, bad chunk sizes, a huge head and
// pipelined requests, each answered with a clear status and reason, the allocator still serving.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startAllocator, startProxy, addrOf, waitFor } from '../helpers/cluster.js'
import type { AllocatorDaemon } from '../../src/allocator/daemon.js'
import type { ProxyDaemon } from '../../src/proxy/daemon.js'
import { ForwardClient } from '../../src/forward/client.js'
import { builtinDefaults } from '../../src/config/defaults.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const run = promisify(execFile)
const PSK = '9'.repeat(64)
const dir = mkdtempSync(join(tmpdir(), 'physarum-pipe-'))
const APP = join(dir, 'pipe.cjs')
writeFileSync(
  APP,
  `const http = require('node:http')
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/echo') {
    // Chunked both ways: the request body streamed back, no Content-Length.
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-request-te': req.headers['transfer-encoding'] ?? '' })
    return req.pipe(res)
  }
  if (url.pathname === '/port') return res.end(String(req.socket.remotePort))
  if (url.pathname === '/nocontent') { res.writeHead(204, { 'x-kind': 'none' }); return res.end() }
  if (url.pathname === '/early') { res.writeHead(413, { 'content-type': 'text/plain' }); return res.end('too large\\n') }
  if (url.pathname === '/count') {
    let n = 0
    const h = require('node:crypto').createHash('sha256')
    req.on('data', c => { n += c.length; h.update(c) })
    return req.on('end', () => res.end(JSON.stringify({ length: n, sha256: h.digest('hex') })))
  }
  if (url.pathname === '/bytes') {
    let left = Number(url.searchParams.get('n'))
    const chunk = Buffer.alloc(65536, 120)
    res.writeHead(200, { 'content-length': String(left) })
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length)
        left -= n
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once('drain', pump)
      }
      res.end()
    }
    return pump()
  }
  res.end('ok\\n')
}).listen(Number(process.env.PORT), '127.0.0.1')
`
)

/** A process's live memory (after a GC when --expose-gc is on). */
function live(): number {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

/** Runs `fn` while sampling live memory; the growth over the start, in MB. */
async function growthDuring(fn: () => Promise<void>): Promise<number> {
  const base = live()
  let peak = base
  const t = setInterval(() => {
    peak = Math.max(peak, live())
  }, 100)
  try {
    await fn()
  } finally {
    clearInterval(t)
  }
  return (peak - base) / 1048576
}

describe('the HTTP/1.1 byte pipe on the serving side, through libp2p', () => {
  let alloc: AllocatorDaemon
  let proxy: ProxyDaemon
  let base: string

  before(async () => {
    alloc = await startAllocator({
      Psk: PSK,
      Apps: { pipe: { Command: [process.execPath, APP], Health: { Path: '/healthz' }, IdleTimeoutS: 300 } },
      Allocator: { Runtime: 'process', MaxInstances: 1, MemoryMB: 1024, DrainTimeoutS: 1 }
    })
    // The fast path off: every request crosses libp2p to the allocator's serving side.
    proxy = await startProxy({
      Psk: PSK,
      Bootstraps: [addrOf(alloc.agent)],
      Proxy: { ...builtinDefaults().Proxy, LocalFastPath: false }
    })
    base = `http://${proxy.address}/pipe`
    await waitFor(
      'the proxy sees the allocator',
      () => proxy.agent.membership.table.get(alloc.agent.peer)?.status === 'alive'
    )
    const { stdout } = await run('curl', ['-sS', '--max-time', '30', `${base}/hello`])
    assert.equal(stdout, 'ok\n')
  })

  after(async () => {
    await proxy.stop()
    await alloc.stop()
    rmSync(dir, { recursive: true, force: true })
    await assertNothingLeft()
  })

  test('a chunked upload comes back as a chunked download, byte for byte', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 17)
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251
    const file = join(dir, 'up.bin')
    writeFileSync(file, body)
    const out = join(dir, 'down.bin')
    const { stdout } = await run('curl', [
      '-sS',
      '--max-time',
      '60',
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      `@${file}`,
      '-o',
      out,
      '-D',
      '-',
      `${base}/echo`
    ])
    // curl asks to continue for a body this large: the app's 100 Continue came through, then its answer.
    assert.match(stdout, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /)
    assert.match(stdout, /^x-request-te: chunked\r$/im, 'the app got the body chunked')
    assert.match(stdout, /^transfer-encoding: chunked\r$/im, 'and answered chunked')
    const { readFileSync } = await import('node:fs')
    assert.equal(
      createHash('sha256').update(readFileSync(out)).digest('hex'),
      createHash('sha256').update(body).digest('hex')
    )
  })

  test('sequential requests reuse one keep-alive connection to the app', async () => {
    const ports = new Set<string>()
    for (let i = 0; i < 5; i++) ports.add((await run('curl', ['-sS', '--max-time', '20', `${base}/port`])).stdout)
    assert.equal(ports.size, 1, `the app saw one client port, not ${[...ports].join(', ')}`)
  })

  test('HEAD and 204 carry no body, and the stream stays in step for the next request', async () => {
    for (let i = 0; i < 3; i++) {
      const head = await run('curl', ['-sS', '--max-time', '20', '-I', `${base}/bytes?n=5000`])
      assert.match(head.stdout, /^HTTP\/1\.1 200/)
      assert.match(head.stdout, /^content-length: 5000\r$/im)
      const none = await run('curl', ['-sS', '--max-time', '20', '-D', '-', `${base}/nocontent`])
      assert.match(none.stdout, /^HTTP\/1\.1 204/)
      assert.match(none.stdout, /^x-kind: none\r\n/im)
      assert.ok(none.stdout.endsWith('\r\n\r\n'), 'nothing after the head')
      const next = await run('curl', ['-sS', '--max-time', '20', `${base}/bytes?n=10`])
      assert.equal(next.stdout, 'x'.repeat(10))
    }
  })

  test("an app's answer before the upload's end: relayed, the rest of the body dropped, the next request served", async () => {
    const file = join(dir, 'early.bin')
    writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 1))
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '30',
      '-w',
      '%{http_code}',
      '--data-binary',
      `@${file}`,
      `${base}/early`
    ])
    assert.equal(r.stdout, 'too large\n413')
    assert.equal((await run('curl', ['-sS', '--max-time', '20', `${base}/hello`])).stdout, 'ok\n')
  })

  test('100 MB down and 100 MB up stream through with flat memory', { timeout: 180000 }, async () => {
    const total = 100 * 1024 * 1024
    const down = await growthDuring(async () => {
      const { stdout } = await run('curl', [
        '-sS',
        '--max-time',
        '120',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{size_download}',
        `${base}/bytes?n=${total}`
      ])
      assert.equal(stdout, `200 ${total}`)
    })
    let answer = ''
    const up = await growthDuring(async () => {
      // curl reads the body from its stdin, written here in 1 MiB pieces as it takes them.
      const curl = spawn('curl', ['-sS', '--max-time', '120', '-T', '-', '-X', 'POST', `${base}/count`])
      curl.stdout.on('data', (c: Buffer) => (answer += c.toString()))
      const piece = Buffer.alloc(1024 * 1024, 3)
      for (let i = 0; i < 100; i++) {
        if (!curl.stdin.write(piece)) await new Promise(r => curl.stdin.once('drain', r))
      }
      curl.stdin.end()
      const code = await new Promise(r => curl.once('close', r))
      assert.equal(code, 0)
    })
    const sha = createHash('sha256')
    for (let i = 0; i < 100; i++) sha.update(Buffer.alloc(1024 * 1024, 3))
    assert.deepEqual(JSON.parse(answer), { length: total, sha256: sha.digest('hex') })
    process.stdout.write(`# 100 MB down: live memory grew ${down.toFixed(1)} MB; up: ${up.toFixed(1)} MB\n`)
    assert.ok(down < 64, `live memory grew by ${down.toFixed(0)} MB while 100 MB went down`)
    assert.ok(up < 64, `live memory grew by ${up.toFixed(0)} MB while 100 MB went up`)
  })

  /** Raw bytes on a fresh forwarding stream to the allocator; everything it answers until it ends the stream. */
  async function raw(bytes: string, app = 'pipe'): Promise<string> {
    const fwd = new ForwardClient(proxy.agent.node)
    const s = await fwd.open(alloc.agent.node.peerId, { v: 1, app })
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    s.write(bytes)
    await new Promise<void>(resolve => {
      const t = setTimeout(() => {
        s.destroy()
        resolve()
      }, 10000)
      s.once('end', () => {
        clearTimeout(t)
        resolve()
      })
      s.once('close', () => {
        clearTimeout(t)
        resolve()
      })
      s.once('error', () => {})
    })
    s.destroy()
    return Buffer.concat(chunks).toString('latin1')
  }

  test('hostile requests on a stream get a clear error and a closed stream, never a crash', async () => {
    const cases: Array<[string, RegExp, RegExp]> = [
      [
        'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n',
        /^HTTP\/1\.1 400 /,
        /both Content-Length and Transfer-Encoding/
      ],
      [
        'POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
        /^HTTP\/1\.1 400 /,
        /malformed chunk size/
      ],
      [`GET / HTTP/1.1\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, /^HTTP\/1\.1 431 /, /head larger than/],
      ['GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', /^HTTP\/1\.1 400 /, /malformed header line/],
      ['GET / HTTP/1.1\nHost: x\n\n', /^HTTP\/1\.1 400 /, /CRLF/]
    ]
    for (const [req, status, why] of cases) {
      const answer = await raw(req)
      assert.match(answer, status, JSON.stringify(req.slice(0, 60)))
      assert.match(answer, why)
      assert.match(answer, /^connection: close\r$/im)
      assert.doesNotMatch(answer, /smuggled/)
      assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer, then the stream ends')
    }
    // The allocator still serves.
    assert.equal((await run('curl', ['-sS', '--max-time', '20', `${base}/hello`])).stdout, 'ok\n')
  })

  test('pipelined requests are answered in order; a refusal is marked as the host’s own', async () => {
    const answer = await raw(
      'GET /bytes?n=3 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /bytes?n=4 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /nocontent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    )
    const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].map(m => m[1])
    assert.deepEqual(statuses, ['200', '200', '200', '204'])
    assert.match(answer, /\r\n\r\nxxxHTTP/)
    assert.match(answer, /"length":5/)
    const refused = await raw('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'nosuchapp')
    assert.match(refused, /^HTTP\/1\.1 404 /)
    assert.match(refused, /^x-physarum-error: UNKNOWN_APP\r$/im)
  })
})
