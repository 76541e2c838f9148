// Shell completion scripts, generated from the commands oclif has (the explicit command map): the words after
// `physarum` (topics, then their commands), each command's flags, and the values of flags and arguments that have a
// fixed set. One bash function; zsh runs it through its bashcompinit.

export interface CompletionFlag {
  name: string
  char?: string
  /** Whether the flag takes a value (then the next word is its value, not a command). */
  takesValue: boolean
  options?: readonly string[]
}

export interface CompletionCommand {
  /** oclif's id: words joined by ':' (`config:show`). */
  id: string
  hidden?: boolean
  flags: CompletionFlag[]
  /** The fixed values of its first argument, if it has any. */
  argOptions?: readonly string[]
}

const q = (words: Iterable<string>): string => [...words].join(' ')

/** Words that only ever come from our own command map; anything else would need quoting in the script. */
function checked(word: string): string {
  if (!/^[A-Za-z0-9_:.@-]+$/.test(word)) throw new Error(`cannot complete ${JSON.stringify(word)}`)
  return word
}

export function bashCompletion(bin: string, commands: CompletionCommand[]): string {
  const visible = commands.filter(c => c.hidden !== true).sort((a, b) => a.id.localeCompare(b.id))
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, '_')}_complete`
  // Every prefix of a command id is a place on the command line: the root (''), topics, commands.
  const next = new Map<string, Set<string>>([['', new Set()]])
  for (const c of visible) {
    const parts = c.id.split(':').map(checked)
    for (let i = 0; i < parts.length; i++) {
      const at = parts.slice(0, i).join(':')
      if (!next.has(at)) next.set(at, new Set())
      next.get(at)?.add(parts[i])
    }
  }
  const places = [...next.keys()].filter(k => k !== '')
  const ids = new Set([...visible.map(c => c.id), ...places])
  const lines: string[] = []
  lines.push(`# ${bin} shell completion (bash; zsh through bashcompinit), generated from its commands.`)
  lines.push(`#   bash: source <(${bin} completion bash)    zsh: source <(${bin} completion zsh)`)
  lines.push(`${fn}() {`)
  lines.push('  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" at="" i w skip=""')
  lines.push('  COMPREPLY=()')
  lines.push('  for ((i = 1; i < COMP_CWORD; i++)); do')
  lines.push('    w="${COMP_WORDS[i]}"')
  lines.push('    if [[ -n "$skip" ]]; then skip=""; continue; fi')
  lines.push('    if [[ "$w" == -* ]]; then')
  lines.push('      [[ "$w" != *=* ]] && case "$at $w" in')
  const valued = visible.flatMap(c =>
    c.flags
      .filter(f => f.takesValue)
      .flatMap(f => [`--${checked(f.name)}`, ...(f.char !== undefined ? [`-${checked(f.char)}`] : [])])
      .map(w => `"${c.id} ${w}"`)
  )
  if (valued.length > 0) lines.push(`        ${valued.join('|')}) skip=1 ;;`)
  lines.push('      esac')
  lines.push('      continue')
  lines.push('    fi')
  lines.push('    case "${at:+$at:}$w" in')
  lines.push(`      ${[...ids].map(id => `"${id}"`).join('|')}) at="\${at:+$at:}$w" ;;`)
  lines.push('    esac')
  lines.push('  done')
  // A flag's value: its fixed set, else nothing (bash then completes file names: -o default).
  lines.push('  case "$at $prev" in')
  for (const c of visible)
    for (const f of c.flags.filter(x => x.takesValue)) {
      const names = [`"${c.id} --${f.name}"`, ...(f.char !== undefined ? [`"${c.id} -${f.char}"`] : [])]
      lines.push(
        `    ${names.join('|')}) ${f.options !== undefined ? `COMPREPLY=($(compgen -W "${q(f.options.map(checked))}" -- "$cur")); ` : ''}return ;;`
      )
    }
  lines.push('  esac')
  lines.push('  local words="" flags=""')
  lines.push('  case "$at" in')
  for (const at of new Set(['', ...ids])) {
    const words = next.get(at) ?? []
    const cmd = visible.find(c => c.id === at)
    const args = [...words, ...(cmd?.argOptions?.map(checked) ?? [])]
    const flags = cmd?.flags.map(f => `--${checked(f.name)}`) ?? []
    lines.push(`    "${at}") words="${q(args)}" flags="${q(flags)}" ;;`)
  }
  lines.push('  esac')
  // Flags when a dash is typed, else what may come next (a command, an argument's value).
  lines.push('  [[ "$cur" == -* ]] && words="$flags"')
  lines.push('  COMPREPLY=($(compgen -W "$words" -- "$cur"))')
  lines.push('}')
  lines.push(`complete -o default -F ${fn} ${bin}`)
  return lines.join('\n') + '\n'
}

export function zshCompletion(bin: string, commands: CompletionCommand[]): string {
  return `autoload -U +X bashcompinit && bashcompinit\n${bashCompletion(bin, commands)}`
}
