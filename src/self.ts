// How to run this physarum again as a child process: the single executable itself,
// or node with bin/physarum in a source checkout. A catalog Command whose first word
// is `physarum` means this executable (the default hello-world-server app is one).
import { isSea } from 'node:sea'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export function selfCommand (): string[] {
  if (isSea()) return [process.execPath]
  return [process.execPath, resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/physarum')]
}

/** The command line to spawn for a catalog Command. */
export function resolveCommand (command: string[]): string[] {
  return command[0] === 'physarum' ? [...selfCommand(), ...command.slice(1)] : command
}
