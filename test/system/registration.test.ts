// The registration API (issue 16, item 3) with real processes: an allocator (CLI), a
// client-mode proxy (CLI, another process) and an external app (node:http in this test)
// that `physarum register` announces through the allocator. Reachable through the proxy;
// withdrawn when its TTL lapses without a refresh, while its health check fails, and on
// deregister (then 404 through the proxy); without the token: 401 and nothing registered.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnCli, runCli, killAll } from '../helpers/cli.js'
import { waitFor } from '../helpers/cluster.js'
import { assertNothingLeft } from '../helpers/orphans.js'

const dir = mkdtempSync(join(tmpdir(), 'physarum-registration-'))
let app: Server | undefined
after(async () => {
  app?.closeAllConnections()
  app?.close()
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

interface View {
  app: string
  address: string
  health: string
  announced: boolean
}

test('register an external app: reachable, TTL, failing check, deregister, token', { timeout: 120000 }, async () => {
  // The external app: answers its path, and /health with 200 until told to fail.
  let healthy = true
  app = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(healthy ? 200 : 500)
      res.end(healthy ? 'ok' : 'failing')
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-external': 'yes' })
    res.end(`external app saw ${req.url}`)
  })
  await new Promise<void>(resolve => app?.listen(0, '127.0.0.1', resolve))
  const addr = `127.0.0.1:${(app.address() as AddressInfo).port}`

  const conf = join(dir, 'conf.json')
  writeFileSync(
    conf,
    JSON.stringify({ Psk: 'registration-test', Listen: ['/ip4/127.0.0.1/tcp/0'], Allocator: { Runtime: 'process' } })
  )
  const env = { HOME: dir, PHYSARUM_RUNTIME_DIR: join(dir, 'run'), XDG_RUNTIME_DIR: '' }
  const alloc = spawnCli(['allocator', '--configfile', conf], { env })
  const boot = (await alloc.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)/, 20000))[1]
  const admin = (await alloc.waitFor(/admin=(127\.0\.0\.1:\d+)/))[1]
  await alloc.waitFor(/catalog: /)
  // The client proxy has its own runtime directory: the CLI's `register` finds the allocator alone.
  const proxy = spawnCli(['proxy', '--configfile', conf, '--ephemeral', '--port', '0', '--admin', '127.0.0.1:0'], {
    env: { ...env, PHYSARUM_RUNTIME_DIR: join(dir, 'run-proxy'), PHYSARUM_BOOTSTRAPS: boot }
  })
  const proxyAdmin = (await proxy.waitFor(/admin=(127\.0\.0\.1:\d+)/, 20000))[1]
  const entry = `http://${(await proxy.waitFor(/proxy listening on http:\/\/(127\.0\.0\.1:\d+)\//, 20000))[1]}`
  const get = async (path: string): Promise<{ status: number; body: string; external: boolean }> => {
    const r = await fetch(`${entry}${path}`, { signal: AbortSignal.timeout(5000) })
    return { status: r.status, body: await r.text(), external: r.headers.get('x-external') === 'yes' }
  }
  const registrations = async (): Promise<View[]> =>
    (await (await fetch(`http://${admin}/v1/registrations`)).json()) as View[]
  const cli = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    await runCli([...args, '--configfile', conf], { env })

  // No token, or a wrong one: 401, and nothing registered.
  const body = JSON.stringify({ app: 'ext', address: addr })
  const anon = await fetch(`http://${admin}/v1/registrations`, { method: 'POST', body })
  assert.equal(anon.status, 401)
  assert.equal(((await anon.json()) as { code: string }).code, 'UNAUTHORIZED')
  const wrongFile = join(dir, 'wrong.token')
  writeFileSync(wrongFile, 'ab'.repeat(32) + '\n', { mode: 0o600 })
  const wrong = await cli(['register', 'ext', addr, '--token-file', wrongFile])
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /^physarum: agent at 127\.0\.0\.1:\d+: wrong admin token\n$/)
  assert.deepEqual(await registrations(), [])
  // A malformed body with the token: 400 with a one-line reason, nothing registered.
  // The daemon made the token file at its first start, 0600, beside its key file.
  const tokenPath = join(dir, '.physarum', 'admin.token')
  assert.equal(statSync(tokenPath).mode & 0o777, 0o600)
  const token = readFileSync(tokenPath, 'utf8').trim()
  const auth = { authorization: `Bearer ${token}` }
  const bad = await fetch(`http://${admin}/v1/registrations`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ app: 'ext', address: addr, ttlS: -1 })
  })
  assert.equal(bad.status, 400)
  assert.match(((await bad.json()) as { error: string }).error, /^\/ttlS must be >= 1$/)
  assert.deepEqual(await registrations(), [])

  // Registered with a TTL: reachable through the other proxy.
  const reg = await cli(['register', 'ext', addr, '--ttl', '3s', '--check', '/health', '--interval', '0.2s'])
  assert.equal(reg.code, 0, reg.stderr)
  assert.match(
    reg.stdout,
    /^registered ext at 127\.0\.0\.1:\d+ with allocator .* \(check http \/health every 0\.2 s, TTL 3 s\): passing, announced\n$/
  )
  const ok = await waitFor(
    'ext through the client proxy',
    async () => {
      const r = await get('/ext/hello')
      return r.status === 200 ? r : undefined
    },
    20000,
    100
  )
  assert.ok(ok.external, 'the external app answered')
  assert.equal(ok.body, 'external app saw /hello')
  // Refreshed, it outlives its TTL; then, no longer refreshed, it is withdrawn after the TTL.
  const t0 = Date.now()
  let lastRefresh = 0
  // The CLI's refresh once; then the API's (a CLI start can take seconds on a loaded machine, the TTL is 3 s).
  lastRefresh = Date.now()
  const r = await cli(['register', 'ext', addr, '--refresh'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^refreshed ext at 127\.0\.0\.1:\d+ on 127\.0\.0\.1:\d+ \(TTL 3 s\)\n$/)
  while (Date.now() - t0 < 4500) {
    await new Promise(resolve => setTimeout(resolve, 1000))
    // The refresh reaches the agent after this: the TTL runs from later than this.
    lastRefresh = Date.now()
    const put = await fetch(`http://${admin}/v1/registrations/refresh`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ app: 'ext', address: addr })
    })
    assert.equal(put.status, 200, await put.text())
  }
  assert.equal((await get('/ext/hello')).status, 200, 'still there after 4.5 s of refreshes (TTL 3 s)')
  await waitFor('registration dropped after its TTL', async () => (await registrations()).length === 0, 10000, 100)
  assert.ok(Date.now() - lastRefresh >= 3000, `withdrawn ${Date.now() - lastRefresh} ms after the last refresh`)
  await waitFor('404 through the proxy after the TTL', async () => (await get('/ext/hello')).status === 404, 10000, 100)
  const late = await cli(['register', 'ext', addr, '--refresh'])
  assert.equal(late.code, 1)
  assert.match(late.stderr, /no registration of ext at .* \(never registered, deregistered, or its TTL lapsed\)/)

  // Without a TTL: a failing health check withdraws it, a passing one brings it back.
  assert.equal((await cli(['register', 'ext', addr, '--check', '/health', '--interval', '0.2s'])).code, 0)
  await waitFor('ext back', async () => (await get('/ext/x')).status === 200, 20000, 100)
  healthy = false
  await waitFor(
    'withdrawn while its check fails',
    async () => {
      const [v] = await registrations()
      return v?.health === 'critical' && !v.announced
    },
    10000,
    100
  )
  await waitFor('no longer served through the proxy', async () => (await get('/ext/x')).status === 404, 10000, 100)
  healthy = true
  await waitFor('announced again once it passes', async () => (await get('/ext/x')).status === 200, 10000, 100)

  // Deregister: 404 through the proxy.
  const dereg = await cli(['deregister', 'ext', addr])
  assert.equal(dereg.code, 0, dereg.stderr)
  assert.match(dereg.stdout, /^deregistered ext at 127\.0\.0\.1:\d+ \(local-\w+-\d+\) from 127\.0\.0\.1:\d+\n$/)
  assert.deepEqual(await registrations(), [])
  await waitFor('404 after deregister', async () => (await get('/ext/x')).status === 404, 10000, 100)
  const again = await cli(['deregister', 'ext'])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /^physarum: agent at [^:]+:\d+: no registration of ext on this agent/)

  // A proxy hosts registrations too (--agent names it): served through it, and gone from it on deregister.
  const onProxy = await cli(['register', 'ext2', addr, '--agent', proxyAdmin])
  assert.equal(onProxy.code, 0, onProxy.stderr)
  assert.match(
    onProxy.stdout,
    /^registered ext2 at .* with the agent 127\.0\.0\.1:\d+ as local-\w+-\d+ .*: passing, announced\n$/
  )
  const viaProxy = await waitFor(
    'ext2 through the proxy it is registered with',
    async () => {
      const r = await get('/ext2/p')
      return r.status === 200 ? r : undefined
    },
    10000,
    100
  )
  assert.equal(viaProxy.body, 'external app saw /p')
  assert.deepEqual(await registrations(), [], 'not on the allocator')
  assert.equal((await cli(['deregister', 'ext2', '--agent', proxyAdmin])).code, 0)
  await waitFor('404 after deregister from the proxy', async () => (await get('/ext2/p')).status === 404, 10000, 100)

  for (const d of [proxy, alloc]) {
    d.child.kill('SIGTERM')
    assert.equal((await d.exited).code, 0)
  }
  // A later start reads the same token: it is never rewritten.
  const again2 = spawnCli(['allocator', '--configfile', conf], { env })
  await again2.waitFor(/catalog: /, 20000)
  assert.equal(readFileSync(tokenPath, 'utf8').trim(), token)
  assert.doesNotMatch(again2.stderr(), /created admin token/)
  again2.child.kill('SIGTERM')
  assert.equal((await again2.exited).code, 0)
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
