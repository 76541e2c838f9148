// The demo app itself (apps/hello-world-server): a malformed request target is a 400,
// not a crash, and the app keeps serving.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { resolve } from 'node:path'
import { ROOT, spawnCli, killAll } from '../helpers/cli.js'
import { assertNothingLeft } from '../helpers/orphans.js'

after(async () => {
  await killAll()
})

test('hello-world-server answers a malformed absolute-form target with 400 and keeps serving', async () => {
  const app = spawnCli([], {
    bin: resolve(ROOT, 'apps/hello-world-server/server.mjs'),
    env: { PORT: '0', HOST: '127.0.0.1' }
  })
  const port = Number((await app.waitFor(/listening on (\d+)/))[1])
  assert.ok(port > 0, 'PORT=0 picks a free port')
  const status = await new Promise<string>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write('GET http://evil.example:e/ HTTP/1.1\r\nHost: x\r\n\r\n')
    })
    s.once('data', d => {
      resolve(d.toString().split('\r\n')[0])
      s.destroy()
    })
    s.once('error', reject)
  })
  assert.equal(status, 'HTTP/1.1 400 Bad Request')
  const r = await fetch(`http://127.0.0.1:${port}/hello`)
  assert.equal(await r.text(), 'hello world\n')
  assert.equal(app.child.exitCode, null)
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
