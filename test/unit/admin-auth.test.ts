// The admin API's state-changing routes (src/cluster/admin/server.ts) and token
// (token.ts): one token check for every mutation, bounded and validated bodies, reads open.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { AdminServer } from '../../src/cluster/admin/server.js'
import { authorized, loadOrCreateToken, readToken } from '../../src/cluster/admin/token.js'

const dir = mkdtempSync(join(tmpdir(), 'physarum-admin-auth-'))
after(() => {
  rmSync(dir, { recursive: true, force: true })
})

test('the token file is made 0600 once and never rewritten; a readable one is refused', () => {
  const file = join(dir, 'sub', 'admin.token')
  const a = loadOrCreateToken(file)
  assert.equal(a.created, true)
  assert.match(a.token, /^[0-9a-f]{64}$/)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const b = loadOrCreateToken(file)
  assert.deepEqual(b, { token: a.token, created: false })
  assert.equal(readToken(file), a.token)
  const open = join(dir, 'open.token')
  writeFileSync(open, a.token, { mode: 0o644 })
  assert.throws(() => readToken(open), /readable by group or others/)
  assert.throws(() => readToken(join(dir, 'missing')), /no admin token at .*missing/)
})

test('authorized: only "Bearer <token>" with the exact token', () => {
  const t = 'ab'.repeat(32)
  assert.equal(authorized(`Bearer ${t}`, t), true)
  assert.equal(authorized(`bearer  ${t}`, t), true)
  assert.equal(authorized(undefined, t), false)
  assert.equal(authorized(t, t), false)
  assert.equal(authorized(`Bearer ${t}x`, t), false)
  assert.equal(authorized(`Bearer ${t.slice(0, -1)}`, t), false)
  assert.equal(authorized('Bearer ', ''), false)
})

test('mutations: 401 without or with a wrong token (nothing runs), 400 on bad JSON or schema, 413 when too big', async () => {
  const token = loadOrCreateToken(join(dir, 'srv.token')).token
  const admin = new AdminServer({ registry: new Registry() }, { listen: '127.0.0.1:0', token })
  const seen: unknown[] = []
  admin.route('/v1/things', () => seen)
  admin.mutation<{ n: number }>({
    method: 'POST',
    path: '/v1/things',
    schema: { type: 'object', required: ['n'], additionalProperties: false, properties: { n: { type: 'integer' } } },
    maxBytes: 100,
    handle: body => {
      seen.push(body.n)
      return { added: body.n }
    }
  })
  await admin.start()
  try {
    const call = async (
      init: RequestInit & { path?: string } = {}
    ): Promise<{ status: number; body: { error?: string; code?: string } & Record<string, unknown> }> => {
      const r = await fetch(`http://${admin.address}${init.path ?? '/v1/things'}`, { method: 'POST', ...init })
      return { status: r.status, body: (await r.json()) as { error?: string; code?: string } }
    }
    const auth = { authorization: `Bearer ${token}` }
    const none = await call({ body: '{"n":1}' })
    assert.equal(none.status, 401)
    assert.equal(none.body.code, 'UNAUTHORIZED')
    assert.equal((await call({ body: '{"n":1}', headers: { authorization: 'Bearer 00' } })).status, 401)
    assert.deepEqual(seen, [], 'nothing ran without the token')
    const notJson = await call({ body: '{"n":', headers: auth })
    assert.equal(notJson.status, 400)
    assert.match(notJson.body.error ?? '', /^body is not JSON: /)
    const wrongType = await call({ body: '{"n":"x"}', headers: auth })
    assert.equal(wrongType.status, 400)
    assert.equal(wrongType.body.error, '/n must be integer')
    assert.equal(
      (await call({ body: '{"n":1,"m":2}', headers: auth })).body.error,
      'body must NOT have additional properties: "m"'
    )
    assert.equal((await call({ body: JSON.stringify({ n: 1, pad: 'x'.repeat(200) }), headers: auth })).status, 413)
    assert.deepEqual(seen, [])
    assert.deepEqual(await call({ body: '{"n":7}', headers: auth }), { status: 200, body: { added: 7 } })
    assert.deepEqual(seen, [7])
    // Reads stay open; a method a path does not take is 405, an unknown path 404.
    assert.equal((await fetch(`http://${admin.address}/v1/things`)).status, 200)
    assert.equal((await call({ method: 'DELETE', headers: auth })).status, 405)
    assert.equal((await call({ path: '/v1/nothing', headers: auth })).status, 404)
  } finally {
    await admin.stop()
  }
  assert.equal(readFileSync(join(dir, 'srv.token'), 'utf8').trim(), token)
})
