// Builds physarum's own Docker image (the top-level Dockerfile) and runs it as the README
// says: an allocator container with the host's Docker socket and network, a proxy
// container beside it, one request through both (a cold start of the demo app in a
// container of the host's engine), then `docker stop` of both: exit 0, no container left.
// Where no registry answers (this project's CI machines), the two base images are made
// locally instead and passed as build arguments: Debian bookworm from debootstrap, and
// the same plus this machine's node and npm for the build stage.
// Run: npm run image-check (needs a Docker engine; debootstrap where no registry answers).
import { spawnSync } from 'node:child_process'
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { docker as dockerSync, dockerAnswers, ensureHelloImage } from './hello-image.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const IMAGE = 'physarum:image-check'
const NAME = 'physarum-image-check'
const BASES = { build: 'node:20-bookworm', run: 'debian:bookworm-slim' }
const STAND_INS = { build: 'physarum-standin/node:20-bookworm', run: 'physarum-standin/debian:bookworm' }

// The label the Docker runtime puts on an instance's container (LABEL_ALLOCATOR in src/allocator/runtime/docker.ts).
const LABEL_ALLOCATOR = 'physarum.allocator'

function docker(args, timeout = 120000) {
  const r = dockerSync(args, { timeout, maxBuffer: 64 * 1024 * 1024 })
  return { ok: r.status === 0, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() || (r.error?.message ?? '') }
}

function must(args, what, timeout) {
  const r = docker(args, timeout)
  if (!r.ok) throw new Error(`${what} failed: ${r.err.split('\n').slice(-5).join(' | ')}`)
  return r.out
}

async function freePort() {
  const s = createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => s.once('listening', resolve))
  const { port } = s.address()
  await new Promise(resolve => s.close(resolve))
  return port
}

/** The base images: the real ones when they can be pulled, else local stand-ins. */
function baseImages(log) {
  const present = tag => docker(['image', 'inspect', tag]).ok
  if (
    (present(BASES.build) || docker(['pull', '-q', BASES.build], 300000).ok) &&
    (present(BASES.run) || docker(['pull', '-q', BASES.run], 300000).ok)
  ) {
    return { ...BASES, standIn: false }
  }
  log(`no registry answers for ${BASES.build} / ${BASES.run}: using local stand-ins`)
  const dir = mkdtempSync(join(tmpdir(), 'physarum-image-check-base-'))
  try {
    if (!present(STAND_INS.run)) {
      const debootstrap = spawnSync(
        'debootstrap',
        ['--variant=minbase', 'bookworm', join(dir, 'rootfs'), 'http://deb.debian.org/debian'],
        { encoding: 'utf8', timeout: 600000 }
      )
      if (debootstrap.status !== 0)
        throw new Error(
          `debootstrap failed (apt-get install debootstrap; it needs Debian's package mirror): ${(debootstrap.stderr || debootstrap.error?.message || '').trim().split('\n').pop()}`
        )
      const imp = spawnSync('sh', ['-c', `tar -C "${join(dir, 'rootfs')}" -c . | docker import - ${STAND_INS.run}`], {
        encoding: 'utf8',
        timeout: 300000
      })
      if (imp.status !== 0) throw new Error(`docker import failed: ${imp.stderr.trim()}`)
      log(`made ${STAND_INS.run} (debootstrap)`)
    }
    if (!present(STAND_INS.build)) {
      const ctx = join(dir, 'node')
      cpSync(realpathSync(process.execPath), join(ctx, 'node'))
      const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' }).stdout.trim()
      cpSync(join(npmRoot, 'npm'), join(ctx, 'npm'), { recursive: true })
      const lines = [
        `FROM ${STAND_INS.run}`,
        'RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*',
        'COPY node /usr/local/bin/node',
        'COPY npm /usr/local/lib/node_modules/npm',
        'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx'
      ]
      // A machine that reaches the registry through a TLS-intercepting proxy trusts its CA
      // through NODE_EXTRA_CA_CERTS; so must npm inside the stand-in.
      const ca = process.env.NODE_EXTRA_CA_CERTS
      if (ca !== undefined && existsSync(ca)) {
        copyFileSync(ca, join(ctx, 'extra-ca.crt'))
        lines.push(
          'COPY extra-ca.crt /etc/ssl/certs/extra-ca.crt',
          'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/extra-ca.crt'
        )
      }
      writeFileSync(join(ctx, 'Dockerfile'), lines.join('\n') + '\n')
      must(
        ['build', '-q', '--network', 'host', '-t', STAND_INS.build, ctx],
        `docker build of ${STAND_INS.build}`,
        600000
      )
      log(`made ${STAND_INS.build} (${STAND_INS.run} + node ${process.version} and npm of this machine)`)
    }
    return { ...STAND_INS, standIn: true }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main() {
  const log = m => console.log(`image-check: ${m}`)
  if (!dockerAnswers()) throw new Error('no Docker engine answers')
  ensureHelloImage(log)
  const bases = baseImages(log)
  const dir = mkdtempSync(join(tmpdir(), 'physarum-image-check-'))
  const containers = [`${NAME}-allocator`, `${NAME}-proxy`]
  try {
    let t0 = Date.now()
    must(
      [
        'build',
        '--network',
        'host',
        '--build-arg',
        `BUILD_IMAGE=${bases.build}`,
        '--build-arg',
        `RUN_IMAGE=${bases.run}`,
        '-t',
        IMAGE,
        ROOT
      ],
      'docker build of physarum',
      1200000
    )
    const size = Number(must(['image', 'inspect', '-f', '{{.Size}}', IMAGE], 'docker image inspect'))
    log(
      `built ${IMAGE} from ${bases.build} and ${bases.run}${bases.standIn ? ' (local stand-ins)' : ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${(size / 1048576).toFixed(0)} MB`
    )

    const [p2p, http, adminA, adminP] = [await freePort(), await freePort(), await freePort(), await freePort()]
    const conf = JSON.parse(readFileSync(join(ROOT, 'conf/conf.json'), 'utf8'))
    writeFileSync(
      join(dir, 'conf.json'),
      JSON.stringify({ ...conf, Psk: 'physarum image check', Listen: [`/ip4/127.0.0.1/tcp/${p2p}`] }),
      { mode: 0o600 }
    )
    const mounts = ['--network', 'host', '-v', `${dir}:/etc/physarum:ro`]
    // As the README runs it: the host's engine through its socket, the identity in a volume.
    must(
      [
        'run',
        '-d',
        '--name',
        containers[0],
        ...mounts,
        '-v',
        '/var/run/docker.sock:/var/run/docker.sock',
        '-v',
        `${NAME}-state:/var/lib/physarum`,
        IMAGE,
        'allocator',
        '--configfile',
        '/etc/physarum/conf.json',
        '--admin',
        `127.0.0.1:${adminA}`
      ],
      'docker run of the allocator'
    )
    let started
    for (let i = 0; i < 150 && started === undefined; i++) {
      started =
        /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(\w+))/.exec(docker(['logs', containers[0]]).err) ??
        undefined
      if (started === undefined) await sleep(200)
    }
    if (started === undefined)
      throw new Error(`the allocator container did not start: ${docker(['logs', containers[0]]).err}`)
    const [, addr, peer] = started
    const runtime = /runtime: (\w+)/.exec(docker(['logs', containers[0]]).err)?.[1]
    must(
      [
        'run',
        '-d',
        '--name',
        containers[1],
        ...mounts,
        IMAGE,
        'proxy',
        '--configfile',
        '/etc/physarum/conf.json',
        '--ephemeral',
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--port',
        String(http),
        '--admin',
        `127.0.0.1:${adminP}`,
        '--bootstrap',
        addr
      ],
      'docker run of the proxy'
    )

    t0 = Date.now()
    let res
    // Until the proxy has joined and the cold start is done: at most 60 s in all.
    while (res?.status !== 200 && Date.now() - t0 < 60000) {
      if (res !== undefined) await sleep(500)
      res = await fetch(`http://127.0.0.1:${http}/hello-world-server/hello`, {
        signal: AbortSignal.timeout(Math.max(1000, 60000 - (Date.now() - t0)))
      }).then(
        async r => ({ status: r.status, body: await r.text(), instance: r.headers.get('x-physarum-instance') }),
        err => ({ status: 0, body: err.message })
      )
    }
    if (res?.status !== 200 || res.body.trim() !== 'hello world')
      throw new Error(`no answer through the containers: ${JSON.stringify(res)}`)
    const instances = must(['ps', '-q', '--filter', `label=${LABEL_ALLOCATOR}=${peer}`], 'docker ps')
      .split('\n')
      .filter(Boolean)
    log(
      `GET /hello-world-server/hello through the proxy container: 200 "hello world" after ${((Date.now() - t0) / 1000).toFixed(1)} s (join and cold start), instance ${res.instance}; allocator runtime: ${runtime}; instance containers: ${instances.length}`
    )
    if (runtime !== 'docker' || instances.length === 0)
      throw new Error("the allocator in its container did not start the instance on the host's engine")

    for (const c of [containers[1], containers[0]]) {
      t0 = Date.now()
      must(['stop', '-t', '60', c], `docker stop ${c}`, 90000)
      const code = must(['inspect', '-f', '{{.State.ExitCode}}', c], 'docker inspect')
      log(`docker stop ${c}: exit ${code} after ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      if (code !== '0') throw new Error(`${c} exited ${code}: ${docker(['logs', '--tail', '5', c]).err}`)
    }
    const left = instances.filter(id => docker(['inspect', id]).ok)
    if (left.length > 0) throw new Error(`containers left behind after the allocator stopped: ${left.join(' ')}`)
    log("every instance container removed on the allocator's SIGTERM; image check passed")
  } finally {
    docker(['rm', '-f', '-v', ...containers])
    docker(['volume', 'rm', `${NAME}-state`])
    if (process.env.KEEP_IMAGE !== '1') docker(['rmi', IMAGE])
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(`image-check: ${err.message}`)
  process.exitCode = 1
})
