// The node's persistent identity: an Ed25519 key in KeyFile (protobuf, mode 0600),
// created when missing and refused when other users could read it.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { ConfigError } from '../config/errors.js'
import { checkPrivateFile } from '../config/files.js'

export async function loadOrCreateKey(file: string): Promise<{ key: PrivateKey; created: boolean }> {
  if (existsSync(file)) {
    checkPrivateFile(file, 'key file')
    let buf: Buffer
    try {
      buf = readFileSync(file)
    } catch (err) {
      throw new ConfigError(
        `key file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      )
    }
    try {
      return { key: privateKeyFromProtobuf(buf), created: false }
    } catch (err) {
      throw new ConfigError(`key file ${file} does not hold a libp2p private key (${(err as Error).message})`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    writeFileSync(file, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
    chmodSync(file, 0o600)
  } catch (err) {
    throw new ConfigError(
      `key file ${file} cannot be created: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    )
  }
  return { key, created: true }
}

export async function ephemeralKey(): Promise<PrivateKey> {
  return await generateKeyPair('Ed25519')
}
