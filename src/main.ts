// The CLI's entry, for bin/physarum and for the single executable alike: oclif gets
// package.json and the command map inline, so nothing is looked up on disk.
import './util/polyfill.js'
import { userInfo } from 'node:os'
import { PACKAGE, VERSION } from './util/version.js'
import { lifelongV8Settings } from './cli/lean-start.js'

export async function main(argv = process.argv.slice(2)): Promise<void> {
  // `--version` is what scripts call most: answer it (in oclif's format) before loading oclif.
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`${PACKAGE.name}/${VERSION} ${process.platform}-${process.arch} node-${process.version}\n`)
    return
  }
  // The allocator's watchdog (a hidden mode, src/allocator/reaper.ts): lean, without oclif.
  if (argv[0] === '__watchdog') {
    await (await import('./allocator/reaper.js')).runWatchdog(argv[1])
    return
  }
  lifelongV8Settings()
  // oclif asks the OS for the user's shell when SHELL is unset, which throws for a user
  // without a passwd entry (common in containers: `docker run --user 12345`).
  if (process.env.SHELL === undefined) {
    try {
      userInfo()
    } catch {
      process.env.SHELL = 'sh'
    }
  }
  const [{ Config, Plugin, flush, handle, run }, { COMMANDS }] = await Promise.all([
    import('@oclif/core'),
    import('./commands/index.js')
  ])
  const root = process.cwd()
  const plugin = new Plugin({ root, isRoot: true, pjson: structuredClone(PACKAGE) as never })
  // The explicit command map is otherwise imported from the `target` file on disk.
  ;(plugin as unknown as { commandCache: unknown }).commandCache = COMMANDS
  await plugin.load()
  const config = await Config.load({ root, pjson: plugin.pjson, plugins: new Map([[plugin.name, plugin]]) })
  try {
    await run(argv, config)
    await flush()
  } catch (err) {
    await handle(err as Error)
  }
}
