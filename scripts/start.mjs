// npm start: a one-machine cluster on the embedded default config — an allocator and a
// proxy on 127.0.0.1, joined by a fresh pre-shared key — then the line to try. The
// allocator uses Docker when an engine answers (the demo image is built first when it
// is missing) and local processes otherwise. Ctrl-C stops both and waits for them.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dockerAnswers, ensureHelloImage } from './hello-image.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const bin = process.env.PHYSARUM_BIN ?? resolve(root, 'bin/physarum')
const port = Number(process.env.PORT ?? 1234)
const say = line => {
  process.stdout.write(`[start] ${line}\n`)
}

if (dockerAnswers()) {
  try {
    ensureHelloImage(say)
  } catch (err) {
    say(`cannot build the demo image (${err.message}); the allocator will report it`)
  }
}

const env = { ...process.env, PHYSARUM_PSK: randomBytes(32).toString('hex') }
const children = []
function run(name, args) {
  const [cmd, argv] = bin.endsWith('/bin/physarum') ? [process.execPath, [bin, ...args]] : [bin, args]
  // Own process group: Ctrl-C reaches this script only, which then stops each daemon
  // exactly once (a second signal would make a daemon skip its graceful shutdown).
  const child = spawn(cmd, argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let seen = ''
  const waiters = []
  const onData = d => {
    process.stderr.write(d.toString().replace(/^(?=.)/gm, `${name.padEnd(9)} | `))
    seen += d.toString()
    for (const w of waiters) w()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise(res => child.on('exit', (code, signal) => res({ code, signal })))
  const waitFor = re =>
    new Promise((res, rej) => {
      const check = () => {
        const m = re.exec(seen)
        if (m !== null) res(m)
      }
      waiters.push(check)
      check()
      exited.then(({ code, signal }) => rej(new Error(`${name} exited (${signal ?? code}) before it was ready`)))
    })
  say(`${name} pid ${child.pid}`)
  const c = { name, child, exited, waitFor }
  children.push(c)
  return c
}

let stopping = false
const running = () => children.filter(c => c.child.exitCode === null && c.child.signalCode === null)
async function stop(code) {
  if (stopping) {
    say('stopping at once')
    for (const c of running()) c.child.kill('SIGINT')
    return
  }
  stopping = true
  say('stopping (Ctrl-C again to skip the graceful shutdown)')
  for (const c of running()) c.child.kill('SIGTERM')
  const results = await Promise.all(children.map(c => c.exited))
  process.exit(code ?? (results.every(r => r.code === 0 || r.signal === 'SIGTERM' || r.signal === 'SIGINT') ? 0 : 1))
}
process.on('SIGINT', () => {
  void stop(0)
})
process.on('SIGTERM', () => {
  void stop(0)
})

try {
  const allocator = run('allocator', ['allocator', '--listen', '/ip4/127.0.0.1/tcp/0'])
  const [, addr] = await allocator.waitFor(/listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)/)
  const proxy = run('proxy', ['proxy', '--port', String(port), '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', addr])
  await proxy.waitFor(/proxy listening on/)
  // Ready to serve once the proxy sees the allocator as a member.
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/_physarum/members`)
      .then(r => r.json())
      .catch(() => [])
    if (JSON.stringify(r).includes('"allocator"')) break
    await new Promise(res => setTimeout(res, 100))
  }
  for (const c of children)
    c.exited.then(() => {
      if (!stopping) {
        say(`${c.name} stopped; stopping the rest`)
        void stop(1)
      }
    })
  say('an allocator and a proxy are running on 127.0.0.1. Try (the first request starts an instance):')
  process.stdout.write(`\n    curl http://127.0.0.1:${port}/hello-world-server/hello\n\n`)
  say('physarum members shows the cluster; Ctrl-C stops everything.')
} catch (err) {
  say(err.message)
  await stop(1)
}
