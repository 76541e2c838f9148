// How to run this physarum again as a child process: the single executable itself,
// or node with bin/physarum in a source checkout. A catalog Command whose first word
// is `physarum` means this executable (the default hello-world-server app is one).
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Whether this process is the single executable (node:sea is missing on other runtimes). */
function isSea(): boolean {
  try {
    return (createRequire(import.meta.url)('node:sea') as { isSea: () => boolean }).isSea()
  } catch {
    return false
  }
}

export function selfCommand(): string[] {
  if (isSea()) return [process.execPath]
  return [process.execPath, resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/physarum')]
}

/** The command line to spawn for a catalog Command. */
export function resolveCommand(command: string[]): string[] {
  return command[0] === 'physarum' ? [...selfCommand(), ...command.slice(1)] : command
}
