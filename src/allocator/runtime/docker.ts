// The Docker runtime (dockerode): one container per instance, labelled with the app,
// the instance and this allocator's peer ID; the catalog's memory, CPU and pids limits;
// the app port published on 127.0.0.1 only, on a host port Docker picks.
import { PULL_TIMEOUT_MS, STOP_GRACE_MS } from '../constants.js'
import Docker from 'dockerode'
import type { AppSpec } from '../../catalog/catalog.js'
import type { Logger } from '../../util/log.js'
import { StartError, logLines, type Runtime, type RuntimeEvent, type RuntimeInstance } from './runtime.js'
import { setTimeout as sleep } from 'node:timers/promises'

export const LABEL_APP = 'physarum.app'
export const LABEL_INSTANCE = 'physarum.instance'
export const LABEL_ALLOCATOR = 'physarum.allocator'

/** Whether a Docker engine answers within the timeout. */
export async function dockerAvailable(docker = new Docker(), timeoutMs = 1500): Promise<boolean> {
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_resolve, reject) =>
        setTimeout(() => {
          reject(new Error('timeout'))
        }, timeoutMs)
      )
    ])
    return true
  } catch {
    return false
  }
}

interface DockerErr {
  statusCode?: number
  message: string
  json?: { message?: string }
}
const reason = (err: unknown): string => (err as DockerErr).json?.message ?? (err as Error).message

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const
  private readonly listeners: Array<(e: RuntimeEvent) => void> = []
  private events?: NodeJS.ReadableStream
  private closed = false
  private readonly unremoved = new Set<string>()

  constructor(private readonly opts: { peer: string; log: Logger; docker?: Docker; pullTimeoutMs?: number }) {}

  private get docker(): Docker {
    return this.opts.docker ?? (this.opts.docker = new Docker())
  }

  async start(spec: AppSpec, id: string): Promise<RuntimeInstance> {
    if (spec.image === undefined) throw new StartError(`app ${spec.name} has no Image for the Docker runtime`)
    const portKey = `${spec.port}/tcp`
    const create = async (): Promise<Docker.Container> =>
      await this.docker.createContainer({
        name: `physarum-${spec.name}-${id}`,
        Image: spec.image,
        Env: [
          ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          `PORT=${spec.port}`,
          `PHYSARUM_APP=${spec.name}`,
          `PHYSARUM_INSTANCE=${id}`
        ],
        Labels: { [LABEL_APP]: spec.name, [LABEL_INSTANCE]: id, [LABEL_ALLOCATOR]: this.opts.peer },
        ExposedPorts: { [portKey]: {} },
        HostConfig: {
          PortBindings: { [portKey]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
          Memory: spec.resources.memoryMB * 1024 * 1024,
          MemorySwap: spec.resources.memoryMB * 1024 * 1024,
          NanoCpus: Math.round(spec.resources.cpus * 1e9),
          PidsLimit: spec.resources.pids,
          SecurityOpt: ['no-new-privileges'],
          RestartPolicy: { Name: 'no' },
          Privileged: false
        }
      })
    let container: Docker.Container
    try {
      container = await create()
    } catch (err) {
      if ((err as DockerErr).statusCode !== 404)
        throw new StartError(`cannot create a container of ${spec.image}: ${reason(err)}`)
      await this.pull(spec.image)
      try {
        container = await create()
      } catch (err2) {
        throw new StartError(`cannot create a container of ${spec.image}: ${reason(err2)}`)
      }
    }
    try {
      await container.start()
      const info = await container.inspect()
      const hostPort = Number(info.NetworkSettings.Ports?.[portKey]?.[0]?.HostPort)
      if (!Number.isInteger(hostPort) || hostPort <= 0) throw new Error(`no host port published for ${portKey}`)
      return { id, app: spec.name, host: '127.0.0.1', port: hostPort, handle: info.Id, startedAt: Date.now() }
    } catch (err) {
      await container.remove({ force: true }).catch(() => {})
      throw new StartError(`cannot start a container of ${spec.image}: ${reason(err)}`)
    }
  }

  /** A missing image is pulled only within a bounded time; no registry → a fast, clear error. */
  private async pull(image: string): Promise<void> {
    const timeoutMs = this.opts.pullTimeoutMs ?? PULL_TIMEOUT_MS
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          // With an options object, the callback overload (no promise); without, the types took the callback for
          // options.
          this.docker.pull(image, {}, (err: Error | null, stream?: NodeJS.ReadableStream) => {
            if (err !== null || stream === undefined) {
              reject(err ?? new Error('no stream'))
              return
            }
            this.docker.modem.followProgress(stream, (e: Error | null) => {
              if (e !== null) reject(e)
              else resolve()
            })
          })
        }),
        new Promise<void>((_resolve, reject) =>
          setTimeout(() => {
            reject(new Error(`pull timed out after ${timeoutMs} ms`))
          }, timeoutMs).unref()
        )
      ])
    } catch (err) {
      throw new StartError(`image ${image} is not available locally and cannot be pulled: ${reason(err)}`)
    }
  }

  async stop(inst: RuntimeInstance, opts: { graceMs?: number } = {}): Promise<void> {
    const c = this.docker.getContainer(inst.handle)
    // Docker's stop sends SIGTERM, waits t seconds, then SIGKILL: a PID 1 that ignores
    // SIGTERM (busybox) would otherwise hold us for Docker's default 10 s.
    try {
      await c.stop({ t: Math.max(0, Math.ceil((opts.graceMs ?? STOP_GRACE_MS) / 1000)) })
    } catch {}
    try {
      await c.remove({ force: true })
      this.unremoved.delete(inst.handle)
    } catch (err) {
      if ((err as DockerErr).statusCode === 404) {
        this.unremoved.delete(inst.handle)
        return
      }
      this.unremoved.add(inst.handle)
      this.opts.log.warn(
        `cannot remove container ${inst.handle.slice(0, 12)}: ${reason(err)}; trying again when the engine answers`
      )
    }
  }

  /**
   * Removes the containers whose removal failed while the engine was unreachable (it keeps them, stopped, across its
   * restart).
   */
  private async removeUnremoved(): Promise<void> {
    for (const handle of [...this.unremoved]) {
      try {
        await this.docker.getContainer(handle).remove({ force: true })
        this.unremoved.delete(handle)
        this.opts.log.info(`removed container ${handle.slice(0, 12)}, left behind while the engine was unreachable`)
      } catch (err) {
        if ((err as DockerErr).statusCode === 404) this.unremoved.delete(handle)
      }
    }
  }

  async listOwn(): Promise<RuntimeInstance[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_ALLOCATOR}=${this.opts.peer}`] }
    })
    // A stopped container has no published port: port 0 marks it for removal.
    return list.map(c => ({
      id: c.Labels[LABEL_INSTANCE] ?? c.Id.slice(0, 12),
      app: c.Labels[LABEL_APP] ?? '',
      host: '127.0.0.1',
      port:
        c.State === 'running'
          ? (c.Ports.find(p => p.IP === '127.0.0.1' && p.PublicPort !== undefined)?.PublicPort ?? 0)
          : 0,
      handle: c.Id,
      startedAt: c.Created * 1000
    }))
  }

  async isRunning(inst: RuntimeInstance): Promise<boolean> {
    try {
      const info = await this.docker.getContainer(inst.handle).inspect()
      return info.State.Running
    } catch {
      return false
    }
  }

  onEvent(fn: (e: RuntimeEvent) => void): void {
    this.listeners.push(fn)
    if (this.events === undefined) void this.watch()
  }

  /** Follows Docker's event stream for our containers' deaths; reconnects while open. */
  private async watch(): Promise<void> {
    while (!this.closed) {
      try {
        const stream = (await this.docker.getEvents({
          filters: { type: ['container'], event: ['die'], label: [`${LABEL_ALLOCATOR}=${this.opts.peer}`] }
        })) as NodeJS.ReadableStream
        this.events = stream
        // (Re)connected: the engine answers again.
        void this.removeUnremoved()
        await new Promise<void>(resolve => {
          logLines(stream, line => {
            if (line.trim() === '') return
            let id: string | undefined
            let code: string | undefined
            try {
              const ev = JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } }
              id = ev.Actor?.Attributes?.[LABEL_INSTANCE]
              code = ev.Actor?.Attributes?.exitCode
            } catch {
              this.opts.log.warn(`unreadable Docker event: ${line.slice(0, 200)}`)
              return
            }
            if (id === undefined) return
            for (const l of this.listeners) {
              try {
                l({ type: 'exited', id, reason: `container died (exit code ${code ?? '?'})` })
              } catch (err) {
                this.opts.log.warn(`handling the death of ${id} failed: ${(err as Error).message}`)
              }
            }
          })
          stream.on('end', resolve)
          stream.on('error', () => {
            resolve()
          })
          stream.on('close', resolve)
        })
      } catch {}
      if (!this.closed) await sleep(1000)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    const s = this.events as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined
    s?.destroy?.()
  }
}
