// A Docker engine of the test's own, so that a test may restart or stop it without
// touching the system's engine that other suites use: its own socket, data and exec
// roots, pid file and bridge (made here, on a 10.213.x.0/24 of its own), no iptables
// rules (published ports go through docker-proxy on 127.0.0.1). Needs root and dockerd.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

/** Why a private engine cannot run here, or undefined when it can. */
export function privateDockerUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a private Docker engine needs root'
  for (const tool of ['dockerd', 'docker', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0)
      return `${tool} is not installed`
  }
  return undefined
}

export class PrivateDocker {
  readonly dir = mkdtempSync(join(tmpdir(), 'physarum-dockerd-'))
  /** The DOCKER_HOST value of this engine. */
  readonly host = `unix://${join(this.dir, 'docker.sock')}`
  private readonly bridge = `physbr${randomBytes(3).toString('hex')}`
  private child?: ChildProcess
  private starts = 0

  private docker(args: string[], input?: Buffer): Buffer {
    return execFileSync('docker', ['-H', this.host, ...args], {
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60000,
      maxBuffer: 256 * 1024 * 1024
    })
  }

  private makeBridge(): void {
    const used = execFileSync('ip', ['-4', '-o', 'addr']).toString()
    let net = ''
    for (let i = 0; i < 50 && (net === '' || used.includes(`${net}.`)); i++)
      net = `10.213.${Math.floor(Math.random() * 250) + 1}`
    execFileSync('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    execFileSync('ip', ['addr', 'add', `${net}.1/24`, 'dev', this.bridge])
    execFileSync('ip', ['link', 'set', this.bridge, 'up'])
  }

  async start(): Promise<void> {
    if (this.starts === 0) this.makeBridge()
    this.starts++
    const log = openSync(join(this.dir, `dockerd-${this.starts}.log`), 'a')
    this.child = spawn(
      'dockerd',
      [
        '-H',
        this.host,
        '--data-root',
        join(this.dir, 'data'),
        '--exec-root',
        join(this.dir, 'exec'),
        '--pidfile',
        join(this.dir, 'docker.pid'),
        '--bridge',
        this.bridge,
        '--iptables=false',
        '--ip-masq=false',
        '--ip-forward=false',
        // busybox httpd ignores SIGTERM: a restart should not wait Docker's default 10 s for it.
        '--shutdown-timeout',
        '1'
      ],
      { stdio: ['ignore', log, log] }
    )
    closeSync(log)
    const deadline = Date.now() + 30000
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`dockerd exited (${this.child.exitCode}): ${this.log()}`)
      if (spawnSync('docker', ['-H', this.host, 'version'], { stdio: 'ignore', timeout: 5000 }).status === 0) return
      await sleep(200)
    }
    throw new Error(`the private dockerd did not answer within 30 s: ${this.log()}`)
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, `dockerd-${this.starts}.log`), 'utf8')
        .split('\n')
        .slice(-15)
        .join('\n')
    } catch {
      return ''
    }
  }

  /** Stops the engine as `systemctl stop docker` would (SIGTERM: its containers are stopped). */
  async stop(): Promise<void> {
    const c = this.child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise(resolve => c.once('exit', resolve))
    c.kill('SIGTERM')
    const t = setTimeout(() => {
      c.kill('SIGKILL')
    }, 30000)
    await exited
    clearTimeout(t)
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }

  /** Copies an image from the system's engine. */
  loadImage(image: string): void {
    this.docker(['load'], execFileSync('docker', ['save', image], { maxBuffer: 256 * 1024 * 1024 }))
  }

  /** Stops the engine, removes its containers, mounts, directories and bridge. */
  async destroy(): Promise<void> {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        const ids = this.docker(['ps', '-a', '-q']).toString().trim()
        if (ids !== '') this.docker(['rm', '-f', ...ids.split('\n')])
      } catch {}
    }
    await this.stop()
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map(l => l.split(' ')[1])
      .filter(m => m?.startsWith(this.dir))
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' })
    rmSync(this.dir, { recursive: true, force: true })
    if (this.starts > 0 && existsSync(`/sys/class/net/${this.bridge}`))
      spawnSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' })
  }
}
