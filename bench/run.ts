// `npm run bench [-- suite…]`: runs the benchmark suites and rewrites docs/BENCHMARKS.md.
import { run as membership } from './membership.js'
import { run as allocation } from './allocation.js'
import { run as forwarding } from './forwarding.js'
import { run as startup } from './startup.js'
import { run as traffic } from './traffic.js'

const suites: Record<string, () => Promise<void>> = { membership, allocation, forwarding, traffic, startup }
const wanted = process.argv.slice(2)
for (const name of wanted.length > 0 ? wanted : Object.keys(suites)) {
  const suite = suites[name]
  if (suite === undefined) {
    process.stderr.write(`unknown suite ${name}; suites: ${Object.keys(suites).join(', ')}\n`)
    process.exit(2)
  }
  process.stderr.write(`== bench ${name}\n`)
  await suite()
}
