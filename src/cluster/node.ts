// The libp2p host: tcp + noise + yamux, pnet when a PSK is set, identify, ping,
// bootstrap and gossipsub. Everything else (membership, rtt, protocols) runs on it.
import '../util/polyfill.js'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { YamuxStreamOptions } from '@chainsafe/libp2p-yamux/config'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { bootstrap } from '@libp2p/bootstrap'
import { preSharedKey } from '@libp2p/pnet'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import type { PrivateKey } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import {
  PING_STREAMS,
  YAMUX_KEEPALIVE_INTERVAL_MS,
  YAMUX_MAX_MESSAGE_BYTES,
  YAMUX_MAX_STREAM_WINDOW_BYTES,
  YAMUX_RECEIVE_WINDOW_BYTES
} from './constants.js'
import { ListenError } from '../util/http.js'

export type PhysarumNode = Libp2p<{ identify: Identify; ping: Ping; pubsub: GossipSub }>

export interface NodeInit {
  privateKey: PrivateKey
  listen: string[]
  /** Addresses to announce instead of the listen addresses. */
  announce?: string[]
  /** Accept connections but never dial out (tests put a node behind a delay relay this way). */
  inboundOnly?: boolean
  bootstraps?: string[]
  /** Swarm-key bytes; undefined runs an open network. */
  psk?: Uint8Array
}

/**
 * libp2p says "Some configured addresses failed to be listened on, you may need to … set
 * `transportManager.faultTolerance` …" on its first line and names the addresses and their
 * causes (with stacks) on the lines after it: a CLI that prints one line printed none of that.
 */
function listenError(err: Error): ListenError {
  const failures: string[] = []
  for (const m of err.message.matchAll(/^\s*(\/\S+): (?:\w*Error: )?(.*)$/gm)) {
    const code = /\b(E[A-Z]{3,})\b/.exec(m[2])?.[1]
    const why = code !== undefined ? `${m[2].replace(/^listen \w+: /, '').replace(/ \S+:?\d*$/, '')} (${code})` : m[2]
    failures.push(`${m[1]}: ${why}`)
  }
  return new ListenError(
    `cannot listen on ${failures.length > 0 ? failures.join('; ') : 'the Listen addresses'} (change Listen in the config, or --listen)`
  )
}

export async function createNode(init: NodeInit): Promise<PhysarumNode> {
  try {
    return await startNode(init)
  } catch (err) {
    throw (err as Error).name === 'UnsupportedListenAddressesError' ? listenError(err as Error) : err
  }
}

async function startNode(init: NodeInit): Promise<PhysarumNode> {
  const bootstraps = init.bootstraps ?? []
  return await createLibp2p({
    privateKey: init.privateKey,
    addresses: {
      listen: init.listen,
      ...(init.announce !== undefined && init.announce.length > 0 ? { announce: init.announce } : {})
    },
    ...(init.inboundOnly === true ? { connectionGater: { denyDialMultiaddr: () => true } } : {}),
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // Data frames the size of noise's largest payload: one noise message each (the yamux patch). A stream's window
    // opens at YAMUX_RECEIVE_WINDOW_BYTES (initialReceiveWindowSize is the yamux patch's) and grows no further than
    // what the stream buffers for a reader that pushes back (maxReadBufferLength, set to the same bytes so that the
    // two agree): a paused reader is sent at most its window, and is never aborted for it.
    streamMuxers: [
      yamux({
        maxMessageSize: YAMUX_MAX_MESSAGE_BYTES,
        keepAliveInterval: YAMUX_KEEPALIVE_INTERVAL_MS,
        streamOptions: {
          initialReceiveWindowSize: YAMUX_RECEIVE_WINDOW_BYTES,
          maxStreamWindowSize: YAMUX_MAX_STREAM_WINDOW_BYTES,
          maxReadBufferLength: YAMUX_MAX_STREAM_WINDOW_BYTES
        } as YamuxStreamOptions
      })
    ],
    ...(init.psk !== undefined ? { connectionProtector: preSharedKey({ psk: init.psk }) } : {}),
    peerDiscovery: bootstraps.length > 0 ? [bootstrap({ list: bootstraps, timeout: 0 })] : [],
    // libp2p's monitor pings every connection each 10 s and aborts it when one ping takes
    // over 5 s: on a saturated host that killed every request on the connection at once.
    // Membership probes each member every ProbeIntervalMs already and owns the verdict.
    connectionMonitor: { enabled: false },
    connectionManager: {
      maxConnections: 1000,
      // Every member keeps a connection to every other one, and on one host they all
      // come from the same IP: libp2p's default of 5 inbound connections per second per
      // host would refuse a cluster's worth of joins. Loopback peers are not limited.
      inboundConnectionThreshold: 50,
      maxIncomingPendingConnections: 64,
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
    },
    services: {
      identify: identify(),
      ping: ping({ maxInboundStreams: PING_STREAMS, maxOutboundStreams: PING_STREAMS }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        floodPublish: true,
        fallbackToFloodsub: false,
        maxInboundDataLength: 1024 * 1024,
        // Gossipsub graylists a peer when more than 10 peers share its IP (Sybil defence).
        // In a PSK cluster every peer holds the key, and several members on one host or
        // behind one NAT are normal: without this, the 15th node on 127.0.0.1 went deaf.
        scoreParams: { IPColocationFactorWeight: 0 },
        // Every member is connected to every other and publishes to all of them at once
        // (floodPublish), so the mesh only repairs gaps: a small mesh means fewer
        // duplicate copies of each announcement to decode and verify. At rest nothing is
        // published (membership sends deltas on change only), so neither the mesh nor
        // IHAVE gossip costs anything then.
        D: 4,
        Dlo: 3,
        Dhi: 6,
        Dout: 1,
        Dscore: 2,
        Dlazy: 3,
        // Without a fast id, gossipsub verifies the signature of every duplicate copy before
        // it notices the duplicate. The id covers the signature and data, so a forged copy
        // cannot pre-empt the genuine message.
        fastMsgIdFn: m => {
          const h = createHash('sha256')
          for (const part of [m.from, m.seqno, m.signature, m.data]) {
            if (part !== undefined) h.update(part)
            h.update('|')
          }
          return h.update(m.topic).digest('base64')
        }
      })
    }
  })
}

/** The node's full dialable multiaddrs, `/ip4/…/tcp/…/p2p/12D3…`; 0.0.0.0 expanded by libp2p. */
export function fullAddrs(node: PhysarumNode): string[] {
  return node.getMultiaddrs().map(m => m.toString())
}
