// Makes sure the Docker image of the demo app, physarum/hello-world-server, exists
// locally: `docker build` of apps/hello-world-server (FROM node:20-alpine) on a
// registry-connected machine; where no registry answers, an image FROM scratch with
// this machine's node binary, the libraries `ldd` lists, and the same server.mjs.
// Run alone: node scripts/hello-image.mjs
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, realpathSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const HELLO_IMAGE = 'physarum/hello-world-server:latest'
const APP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../apps/hello-world-server')

/** `docker ARGS` with the classic builder (no buildx here), waited for; spawnSync's result. */
export const docker = (args, opts = {}) =>
  spawnSync('docker', args, {
    encoding: 'utf8',
    timeout: 300000,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    ...opts
  })

export function dockerAnswers() {
  return docker(['info'], { stdio: 'ignore', timeout: 10000 }).status === 0
}

/** Returns how the image came to be: 'present', 'built', or 'built-offline'. */
export function ensureHelloImage(log = console.log) {
  if (docker(['image', 'inspect', HELLO_IMAGE], { stdio: 'ignore' }).status === 0) return 'present'
  log(`building ${HELLO_IMAGE} from apps/hello-world-server/Dockerfile …`)
  const online = docker(['build', '-q', '-t', HELLO_IMAGE, APP_DIR])
  if (online.status === 0) return 'built'
  log(
    `no registry answers (${(online.stderr || online.stdout).trim().split('\n').pop()}); building it FROM scratch with this machine's node instead`
  )
  const dir = mkdtempSync(join(tmpdir(), 'physarum-hello-image-'))
  try {
    const node = realpathSync(process.execPath)
    const files = [[node, '/usr/local/bin/node']]
    for (const line of spawnSync('ldd', [node], { encoding: 'utf8' }).stdout.split('\n')) {
      const m = /(\/\S+) \(0x/.exec(line)
      if (m !== null) files.push([realpathSync(m[1]), m[1]])
    }
    files.push([join(APP_DIR, 'server.mjs'), '/app/server.mjs'])
    const lines = ['FROM scratch']
    for (const [from, to] of files) {
      mkdirSync(join(dir, 'root', dirname(to)), { recursive: true })
      copyFileSync(from, join(dir, 'root', to))
    }
    lines.push(
      'COPY root/ /',
      'ENV PORT=8080 HOST=0.0.0.0',
      'EXPOSE 8080',
      'USER 1000:1000',
      'CMD ["/usr/local/bin/node", "/app/server.mjs"]'
    )
    writeFileSync(join(dir, 'Dockerfile'), lines.join('\n') + '\n')
    const offline = docker(['build', '-q', '-t', HELLO_IMAGE, dir])
    if (offline.status !== 0) throw new Error(`docker build failed: ${(offline.stderr || offline.stdout).trim()}`)
    return 'built-offline'
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!dockerAnswers()) {
    console.error('no Docker engine answers')
    process.exit(1)
  }
  console.log(ensureHelloImage())
}
