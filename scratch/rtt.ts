import { startAgent, addrOf, waitFor } from '../test/helpers/cluster.js'
const psk = process.argv[2] === 'psk' ? 'a'.repeat(64) : undefined
const a = await startAgent({ config: { Psk: psk } })
const b = await startAgent({ config: { Psk: psk, Bootstraps: [addrOf(a)] } })
await waitFor('see', () => a.membership.members().length === 1)
const xs: number[] = []
for (let i = 0; i < 50; i++) xs.push(await a.rtt.probe(b.node.peerId))
xs.sort((x, y) => x - y)
console.log('median', xs[25], 'min', xs[0], 'max', xs[49])
await a.stop(); await b.stop()
