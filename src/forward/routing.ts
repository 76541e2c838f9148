// Host-side routing: which local instance a forwarded request goes to, or why none. One
// rule for every host, whether its instances are the allocator's or a server-mode proxy's
// user-run one. A request's whole path, each step in its own module:
//   entrypoint (proxy/entrypoint.ts: HTTP in, /<app>/<rest>)
//   → request (proxy/request.ts: attempts, retries, the outcome)
//   → placement (proxy/placement.ts: which instance, cold starts)
//   → forward client (forward/client.ts: a pooled libp2p stream to the host)
//   → forward serve (forward/serve.ts: HTTP read off the stream)
//   → routing (here: frame → local instance)
//   → instance (the app, over a keep-alive pool on loopback)
import type { ForwardErrorCode, HeaderFrame } from './protocol.js'
import type { AppProtocol } from '../catalog/catalog.js'

/** Where a forwarded request goes on this host. */
export interface ForwardTarget {
  app: string
  instanceId: string
  host: string
  port: number
  /** What the instance speaks: HTTP/1.1, or HTTP/2 (h2c, grpc) whatever the hop carried. */
  protocol: AppProtocol
  /** Marks a request in flight; call the returned function when it is over. */
  begin: () => () => void
}

/** Why this host does not pass a request on: the app never saw it. */
export interface Refusal {
  code: ForwardErrorCode
  message: string
}

export type Resolve = (frame: HeaderFrame) => ForwardTarget | Refusal

/** What a host knows of its own instances. */
export interface InstanceSource<I extends { id: string; inFlight: number }> {
  /** Shutting down: new requests go elsewhere. */
  draining: () => boolean
  /** Whether this host serves the app at all. */
  serves: (app: string) => boolean
  /** Its ready instances of the app. */
  ready: (app: string) => I[]
  /** Where to send a request for one of them; undefined when it has no address (yet). */
  target: (inst: I) => ForwardTarget | undefined
}

export function isRefusal(r: ForwardTarget | Refusal): r is Refusal {
  return 'code' in r
}

/**
 * The instance a frame names, or else the least loaded ready one. A frame names an
 * instance when the proxy chose it by its announced load and RTT: another one would skew
 * the proxy's balancing figures, so a named instance that is gone is a refusal (the proxy
 * then picks again), not a substitute.
 */
export function router<I extends { id: string; inFlight: number }>(source: InstanceSource<I>): Resolve {
  return frame => {
    if (source.draining()) return { code: 'DRAINING', message: 'this host is shutting down' }
    if (!source.serves(frame.app)) return { code: 'UNKNOWN_APP', message: `app ${frame.app} is not hosted here` }
    const ready = source.ready(frame.app)
    let inst: I | undefined
    if (frame.instance !== undefined) inst = ready.find(i => i.id === frame.instance)
    else for (const i of ready) if (inst === undefined || i.inFlight < inst.inFlight) inst = i
    const target = inst === undefined ? undefined : source.target(inst)
    if (target !== undefined) return target
    const message =
      frame.instance !== undefined
        ? `instance ${frame.instance} of ${frame.app} is not running here`
        : `no ready instance of ${frame.app} here`
    return { code: 'NO_INSTANCE', message }
  }
}
