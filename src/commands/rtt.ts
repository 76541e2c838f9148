import { Args, Flags } from '@oclif/core'
import { BaseCommand, UsageError } from '../cli/base.js'
import { configFlags, readAgentFlags } from '../cli/flags.js'
import type { MemberView } from '../cluster/agent.js'

/** How long a brief observer waits for the view (ms) when no local agent answers. */
const JOIN_WAIT_MS = 3000

export default class Rtt extends BaseCommand {
  static override summary = 'Estimate the round-trip time between two members from their network coordinates.'
  static override description =
    "Like `consul rtt`: no probe is sent, the estimate comes from the members' Vivaldi coordinates, which the failure detector's probes keep up to date. With one PEER, the other end is the local agent. A PEER is a peer ID or a unique part of one (the start or the end, as `members` prints it)."
  static override examples = [
    '<%= config.bin %> rtt 12D3KooWAbc…',
    '<%= config.bin %> rtt x1yZ9q k3PqR7',
    '<%= config.bin %> rtt --json 12D3KooWAbc… 12D3KooWDef…',
    '<%= config.bin %> rtt 12D3KooWAbc… 12D3KooWDef… --bootstrap /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW…'
  ]

  static override args = {
    peer: Args.string({ description: 'a member (peer ID, or a unique start or end of one)', required: true }),
    other: Args.string({ description: 'a second member (default: the local agent)', required: false })
  }

  static override flags = {
    ...configFlags,
    ...readAgentFlags,
    json: Flags.boolean({ description: 'print JSON' })
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Rtt)
    const [{ setup }, { agentsToAsk, byJoining, fromFirstAgent }, { estimateRttMs }, { shortPeer }] = await Promise.all(
      [
        import('../cli/setup.js'),
        import('../cli/members/client.js'),
        import('../cluster/coordinate/index.js'),
        import('../cluster/membership/membership.js')
      ]
    )
    const { loaded, log } = setup({ ...flags, 'log-level': flags['log-level'] ?? 'warn' }, { role: 'observer' })
    const first = await fromFirstAgent(agentsToAsk(loaded.config, flags.agent))
    const tried = first.tried
    let rows = first.rows
    if (rows === undefined && loaded.config.Bootstraps.length > 0) {
      // No local agent: join briefly as an observer; its push-pull brings every member's coordinate.
      rows = await byJoining(loaded.config, log, JOIN_WAIT_MS)
      if (args.other === undefined)
        throw new UsageError('no local agent answers: give two members (PEER OTHER) to estimate between them')
    }
    if (rows === undefined)
      throw new UsageError(
        `${tried.join('; ')}: run this on a host with an allocator or proxy, point it at one with --agent HOST:PORT, or at a cluster with --bootstrap MULTIADDR`
      )
    const all = rows
    const find = (q: string): MemberView => {
      const hits = all.filter(r => r.peer === q || r.peer.startsWith(q) || r.peer.endsWith(q))
      const exact = hits.find(r => r.peer === q)
      if (exact !== undefined) return exact
      if (hits.length === 0) throw new UsageError(`no member ${JSON.stringify(q)}: \`physarum members\` lists them`)
      if (hits.length > 1)
        throw new UsageError(
          `${JSON.stringify(q)} names ${hits.length} members (${hits.map(h => shortPeer(h.peer)).join(', ')}): give more of the peer ID`
        )
      return hits[0]
    }
    const a = find(args.peer)
    const b = args.other !== undefined ? find(args.other) : all.find(r => r.self)
    if (b === undefined) throw new UsageError('the agent did not list itself: give two members')
    // A coordinate's height makes its distance to itself nonzero: a member is no distance from itself.
    if (a.peer === b.peer)
      throw new UsageError(
        `${shortPeer(a.peer)} is ${args.other !== undefined ? 'named twice' : 'the local agent itself'}: name two members`
      )
    for (const m of [a, b])
      if (m.coordinate === null || m.coordinate === undefined)
        throw new UsageError(
          `${shortPeer(m.peer)} has no network coordinate yet (it has not been probed, or runs an older version)`,
          1
        )
    const ms = estimateRttMs(
      a.coordinate as NonNullable<MemberView['coordinate']>,
      b.coordinate as NonNullable<MemberView['coordinate']>
    )
    if (flags.json) {
      process.stdout.write(JSON.stringify({ from: b.peer, to: a.peer, estimatedRttMs: Number(ms.toFixed(3)) }) + '\n')
      return
    }
    process.stdout.write(
      `Estimated ${shortPeer(b.peer)} <-> ${shortPeer(a.peer)} rtt: ${ms.toFixed(3)} ms (using network coordinates)\n`
    )
  }
}
