// What the hostile-input and security suites aim at their targets (an allocator and a
// proxy as real CLI child processes, started by helpers/daemons.ts): the catalog app, a
// bare libp2p peer (the real node module, with or without the PSK) that speaks raw bytes
// to them, and readers of their metrics and of their sockets in /proc.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createNode, type PhysarumNode } from '../../src/cluster/node.js'
import { ephemeralKey } from '../../src/cluster/identity.js'
import { pskHex, swarmKey } from '../../src/config/psk.js'
import { HELLO_COMMAND } from './cluster.js'

/** The hello-world-server as the only catalog app of the targets. */
export const HELLO = {
  Command: HELLO_COMMAND,
  Port: 8080,
  Health: { Path: '/healthz' },
  IdleTimeoutS: 600,
  MaxInstances: 2,
  Resources: { MemoryMB: 64 }
}

/** A bare libp2p peer on 127.0.0.1 with the given PSK (or none), dialled to `addrs`. */
export async function rawPeer(psk: string | undefined, addrs: string[] = []): Promise<PhysarumNode> {
  const node = await createNode({
    privateKey: await ephemeralKey(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    psk: psk === undefined ? undefined : swarmKey(pskHex(psk))
  })
  await node.start()
  for (const a of addrs) await node.dial(multiaddr(a), { signal: AbortSignal.timeout(10000) })
  return node
}

/**
 * Everything the remote sends until it closes (or resets) the stream, bounded by
 * `timeoutMs`; or until `complete` says what arrived is whole ('complete').
 */
export async function readAll(
  stream: Stream,
  timeoutMs: number,
  complete?: (bytes: Buffer) => boolean
): Promise<{ bytes: Buffer; end: 'closed' | 'reset' | 'timeout' | 'complete' }> {
  const chunks: Buffer[] = []
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    stream.abort(new Error('test timeout'))
  }, timeoutMs)
  let end: 'closed' | 'reset' | 'timeout' | 'complete' = 'closed'
  try {
    for await (const c of stream) {
      chunks.push(Buffer.from(c instanceof Uint8Array ? c : c.subarray()))
      if (complete?.(Buffer.concat(chunks)) === true) {
        clearTimeout(timer)
        stream.abort(new Error('done'))
        return { bytes: Buffer.concat(chunks), end: 'complete' }
      }
    }
  } catch {
    end = 'reset'
  } finally {
    clearTimeout(timer)
  }
  if (timedOut) end = 'timeout'
  else if (stream.status === 'reset' || stream.status === 'aborted') end = 'reset'
  return { bytes: Buffer.concat(chunks), end }
}

/** A varint length prefix, as lpStream writes it. */
export function varint(n: number): Uint8Array {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Uint8Array.from(out)
}

export async function metrics(admin: string): Promise<string> {
  return await (await fetch(`http://${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
}

/** Sum of a counter's samples in Prometheus text, optionally only those whose labels match. */
export function counter(text: string, name: string, labels?: RegExp): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (labels !== undefined && !labels.test(line)) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/** Distinct values of label `label` across all series in Prometheus text. */
export function labelValues(text: string, label: string): Set<string> {
  const out = new Set<string>()
  for (const m of text.matchAll(new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`, 'g'))) out.add(m[1])
  return out
}

/** The TCP addresses a process listens on ("127.0.0.1:4001", "0.0.0.0:8080", "[::]:80"), from /proc. */
export function listening(pid: number): string[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`)
      const m = /^socket:\[(\d+)\]$/.exec(l)
      if (m !== null) inodes.add(m[1])
    } catch {}
  }
  const out: string[] = []
  for (const [file, v6] of [
    ['tcp', false],
    ['tcp6', true]
  ] as const) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f[3] !== '0A' || !inodes.has(f[9])) continue
      const [hex, port] = f[1].split(':')
      out.push(`${v6 ? `[${ipv6(hex)}]` : ipv4(hex)}:${parseInt(port, 16)}`)
    }
  }
  return out
}

function ipv4(hex: string): string {
  return [3, 2, 1, 0].map(i => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.')
}
function ipv6(hex: string): string {
  // /proc prints four 32-bit words, each in host (little-endian) byte order.
  const bytes: number[] = []
  for (let w = 0; w < 4; w++)
    for (const i of [3, 2, 1, 0]) bytes.push(parseInt(hex.slice(w * 8 + i * 2, w * 8 + i * 2 + 2), 16))
  if (bytes.every(b => b === 0)) return '::'
  if (bytes.slice(0, 15).every(b => b === 0) && bytes[15] === 1) return '::1'
  if (bytes.slice(0, 10).every(b => b === 0) && bytes[10] === 255 && bytes[11] === 255)
    return `::ffff:${bytes.slice(12).join('.')}`
  return Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16)).join(':')
}
