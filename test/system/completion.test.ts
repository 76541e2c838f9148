// `physarum completion bash|zsh` (issue 16, item 7): the script, sourced into a real bash, completes every command of
// the command map and every flag of each, the fixed values of flags and arguments, and skips hidden commands.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { runCli } from '../helpers/cli.js'
import { COMMANDS } from '../../src/commands/index.js'
import { assertNothingLeft } from '../helpers/orphans.js'

let script: string

before(async () => {
  const r = await runCli(['completion', 'bash'])
  assert.equal(r.code, 0, r.stderr)
  script = r.stdout
})

/** What bash offers for the command line `words` (the last one being completed). */
function complete(...words: string[]): string[] {
  const line = ['physarum', ...words].map(w => `'${w}'`).join(' ')
  const r = spawnSync(
    'bash',
    [
      '--norc',
      '-c',
      `eval "$(cat)"; COMP_WORDS=(${line}); COMP_CWORD=${words.length}; _physarum_complete; printf '%s\\n' "\${COMPREPLY[@]}"`
    ],
    { input: script, encoding: 'utf8', timeout: 10000 }
  )
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stderr, '')
  return r.stdout.split('\n').filter(l => l !== '')
}

test('the root offers every visible command and topic, no hidden one', () => {
  const ids = Object.entries(COMMANDS)
    .filter(([, c]) => (c as { hidden?: boolean }).hidden !== true)
    .map(([id]) => id.split(':')[0])
  assert.deepEqual(complete('').sort(), [...new Set(ids)].sort())
  assert.ok(!complete('').includes('hello-world-server'))
  assert.deepEqual(complete('con'), ['config'])
  assert.deepEqual(complete('config', 's'), ['show'])
  assert.deepEqual(complete('service', '').sort(), ['install', 'remove', 'status'])
})

test('every command completes every one of its flags', () => {
  for (const [id, cmd] of Object.entries(COMMANDS)) {
    if ((cmd as { hidden?: boolean }).hidden === true) continue
    const flags = Object.keys({ ...cmd.baseFlags, ...cmd.flags }).map(f => `--${f}`)
    const offered = complete(...id.split(':'), '--')
    for (const f of flags) assert.ok(offered.includes(f), `${id}: ${f} not offered (${offered.join(' ')})`)
  }
})

test('flag values and arguments with a fixed set; a flag value is not taken for a command', () => {
  assert.deepEqual(complete('config', 'show', '--role', ''), ['allocator', 'proxy', 'observer'])
  assert.deepEqual(complete('proxy', '--log-format', 'j'), ['json'])
  assert.deepEqual(complete('service', 'install', ''), ['allocator', 'proxy'])
  assert.deepEqual(complete('service', 'install', '--r'), ['--root'])
  assert.deepEqual(complete('completion', ''), ['bash', 'zsh'])
  // --port's value 1234 is skipped: still at `proxy`, whose flags are offered.
  assert.deepEqual(complete('proxy', '--port', '1234', '--ad').sort(), ['--address', '--admin'])
  // A free-form value (a file) gets nothing from us: bash completes file names (-o default).
  assert.deepEqual(complete('allocator', '--configfile', ''), [])
})

test('zsh gets the same through bashcompinit; no shell named and none in $SHELL → one line', async () => {
  const z = await runCli(['completion', 'zsh'])
  assert.equal(z.code, 0)
  assert.ok(z.stdout.startsWith('autoload -U +X bashcompinit && bashcompinit\n'))
  assert.ok(z.stdout.endsWith(script))
  const none = await runCli(['completion'], { env: { SHELL: '/bin/fish' } })
  assert.equal(none.code, 2)
  assert.equal(none.stderr, 'physarum: name the shell: physarum completion bash|zsh ($SHELL is not bash or zsh)\n')
  const bad = await runCli(['completion', 'fish'])
  assert.equal(bad.code, 2)
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
})

// Nothing this suite started may be left (helpers/orphans.ts), checked after its own cleanup.
after(async () => {
  await assertNothingLeft()
})
