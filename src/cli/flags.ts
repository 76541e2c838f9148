// Flags shared by the commands, and their translation into config-loader input.
import { Flags } from '@oclif/core'
import type { ConfigFlags } from '../config/load.js'

export const configFlags = {
  configfile: Flags.string({
    char: 'c',
    description:
      'config file (default: ./conf/conf.json if present, else /etc/physarum/conf.json, else built-in defaults)',
    helpValue: 'PATH'
  }),
  bootstrap: Flags.string({
    char: 'b',
    multiple: true,
    description: 'multiaddr of a node to join through, /ip4/…/tcp/…/p2p/12D3… (repeatable)',
    helpValue: 'MULTIADDR'
  }),
  'psk-file': Flags.string({ description: 'file holding the cluster PSK (mode 0600)', helpValue: 'PATH' }),
  'log-level': Flags.option({ options: ['error', 'warn', 'info', 'debug'] as const, description: 'log level' })(),
  'log-format': Flags.option({ options: ['text', 'json'] as const, description: 'log format' })()
}

export const daemonFlags = {
  ...configFlags,
  listen: Flags.string({
    char: 'l',
    multiple: true,
    description: 'multiaddr to listen on (repeatable)',
    helpValue: 'MULTIADDR'
  }),
  keyfile: Flags.string({ description: 'identity key file (created 0600 when missing)', helpValue: 'PATH' }),
  ephemeral: Flags.boolean({ description: 'use a throwaway identity instead of the key file' }),
  admin: Flags.string({ description: 'admin API address HOST:PORT (port 0 picks one)', helpValue: 'HOST:PORT' })
}

/** The flags of `flags` that are config values (the others are the command's own). */
export function toConfigFlags(flags: Record<string, unknown>): ConfigFlags {
  const pick = <K extends keyof ConfigFlags>(k: K): ConfigFlags[K] | undefined => flags[k] as ConfigFlags[K] | undefined
  return {
    configfile: pick('configfile'),
    bootstrap: pick('bootstrap'),
    listen: pick('listen'),
    'psk-file': pick('psk-file'),
    keyfile: pick('keyfile'),
    ephemeral: pick('ephemeral'),
    'log-level': pick('log-level'),
    'log-format': pick('log-format'),
    admin: pick('admin'),
    port: pick('port'),
    bind: pick('bind'),
    'tls-cert': pick('tls-cert'),
    'tls-key': pick('tls-key')
  }
}

/** How a command that reads from a local agent finds it. */
export const readAgentFlags = {
  agent: Flags.string({
    char: 'a',
    description:
      "the agent's admin API (default: Admin.Listen, else this host's daemons from the runtime directory, else 127.0.0.1:7701, 127.0.0.1:7702)",
    helpValue: 'HOST:PORT'
  })
}

/** How a command that calls a local agent finds it, and its admin token. */
export const agentFlags = {
  ...readAgentFlags,
  'token-file': Flags.string({
    description: 'admin token file (default: the one the agent recorded, else ~/.physarum/admin.token)',
    helpValue: 'PATH'
  })
}
