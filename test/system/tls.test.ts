// TLS on the entrypoint (real CLI processes, curl and node:https as clients): `config init
// --tls` writes a self-signed pair (key 0600); the proxy serves HTTPS and h2 by ALPN on one
// port with X-Forwarded-Proto https; a SIGHUP after the files were replaced serves the new
// certificate on the next connection while an open one keeps working; a key file others can
// read is refused in one line.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { Agent, request as httpsRequest } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { spawnCli, runCli, killAll } from '../helpers/cli.js'
import { reservePort } from '../../src/allocator/runtime/process.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'physarum-tls-'))
const env = { HOME: dir, PHYSARUM_RUNTIME_DIR: join(dir, 'run') }
const app = { pid: 0 }
after(async () => {
  await killAll()
  if (app.pid > 0) process.kill(app.pid)
  rmSync(dir, { recursive: true, force: true })
})

/** One GET on `agent`'s connection: the body, and which certificate and connection answered. */
async function get(
  url: string,
  agent: Agent
): Promise<{ body: string; fingerprint: string; reused: boolean; socket: TLSSocket }> {
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent, servername: 'localhost' }, res => {
      // Read now: a keep-alive agent takes the socket back once the answer is over.
      const socket = res.socket as TLSSocket
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => {
        resolve({ body, fingerprint: socket.getPeerCertificate().fingerprint256, reused: req.reusedSocket, socket })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

test(
  'HTTPS and h2 on one port, X-Forwarded-Proto https, a new certificate on SIGHUP, the key 0600',
  { timeout: 90000 },
  async () => {
    // Two self-signed pairs, as `config init --tls` writes them.
    for (const d of ['a', 'b']) {
      const init = await runCli(['config', 'init', '--output', join(dir, d, 'conf.json'), '--tls'], { env })
      assert.equal(init.code, 0, init.stderr)
      assert.match(init.stderr, /self-signed certificate/)
      assert.equal(statSync(join(dir, d, 'tls.key')).mode & 0o777, 0o600)
    }
    const cert = join(dir, 'tls.crt')
    const key = join(dir, 'tls.key')
    copyFileSync(join(dir, 'a', 'tls.crt'), cert)
    copyFileSync(join(dir, 'a', 'tls.key'), key)
    chmodSync(key, 0o600)

    // The app: tells which scheme the proxy says the client used.
    const appPort = await reservePort()
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('node:http').createServer((q, s) => s.end('proto=' + q.headers['x-forwarded-proto'] + ' path=' + q.url)).listen(${appPort}, '127.0.0.1')`
      ],
      { stdio: 'ignore' }
    )
    app.pid = child.pid ?? 0
    const conf = join(dir, 'conf.json')
    writeFileSync(
      conf,
      JSON.stringify({ Psk: 'tls-test-key', Listen: ['/ip4/127.0.0.1/tcp/0'], Apps: { web: { Port: appPort } } })
    )
    const port = await reservePort()
    const args = ['proxy', '--configfile', conf, '--app', 'web']
    const proxy = spawnCli([...args, '--port', String(port), '--tls-cert', cert, '--tls-key', key], { env })
    await proxy.waitFor(/proxy listening on https:\/\//, 20000)
    const url = `https://localhost:${port}/web/x`
    const curl = async (ca: string, ...more: string[]): Promise<string> =>
      (await run('curl', ['-sS', '--max-time', '10', '--cacert', ca, '-w', ' %{http_version}', ...more, url])).stdout
    await proxy.waitFor(/instance of web at \S+ passes its check: announced/, 20000)
    assert.equal(await curl(cert, '--http1.1'), 'proto=https path=/x 1.1')
    assert.equal(await curl(cert, '--http2'), 'proto=https path=/x 2', 'h2 by ALPN on the same port')

    // A keep-alive connection opened with the first certificate.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(cert) })
    const first = await get(url, agent)
    assert.equal(first.body, 'proto=https path=/x')

    // Renewal: the files replaced, then SIGHUP.
    copyFileSync(join(dir, 'b', 'tls.crt'), cert)
    copyFileSync(join(dir, 'b', 'tls.key'), key)
    proxy.child.kill('SIGHUP')
    await proxy.waitFor(/TLS certificate reloaded/, 10000)
    assert.equal(await curl(join(dir, 'b', 'tls.crt'), '--http2'), 'proto=https path=/x 2', 'the next connection')
    await assert.rejects(
      curl(join(dir, 'a', 'tls.crt')),
      /SSL certificate problem|self-signed|60/,
      'the old one is gone'
    )
    const again = await get(url, agent)
    assert.equal(again.reused, true, 'the same connection')
    assert.equal(again.fingerprint, first.fingerprint, 'still with its certificate')
    assert.equal(again.body, 'proto=https path=/x')
    agent.destroy()

    // A key file others can read: refused in one line.
    chmodSync(key, 0o644)
    const bad = await runCli([...args, '--port', '0', '--tls-cert', cert, '--tls-key', key], { env, timeoutMs: 20000 })
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /TLS key file .* is readable by group or others \(mode 644\); run: chmod 600/)
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace')
  }
)

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
