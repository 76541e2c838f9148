// TLS on the proxy's entrypoint (Proxy.Tls): the certificate and key read and checked (the
// key file 0600, as the PSK's), and a self-signed pair for trying it (`config init --tls`).
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { ConfigError } from './errors.js'
import { checkPrivateFile, expandHome } from './files.js'
import type { Config } from './schema.js'

/** A self-signed certificate of `config init --tls` is valid this long (days): for trying TLS, not for production. */
const SELF_SIGNED_DAYS = 365

export interface TlsFiles {
  cert: Buffer
  key: Buffer
}

/** The entrypoint's certificate and key, or undefined without Proxy.Tls; a ConfigError in one line when unusable. */
export function loadTls(proxy: Config['Proxy']): TlsFiles | undefined {
  const t = proxy.Tls
  if (t === undefined) return undefined
  if (t.CertFile === undefined || t.KeyFile === undefined)
    throw new ConfigError('Proxy.Tls needs both CertFile and KeyFile (--tls-cert and --tls-key)')
  const certFile = expandHome(t.CertFile)
  const keyFile = expandHome(t.KeyFile)
  checkPrivateFile(keyFile, 'TLS key file')
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new ConfigError(`${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
    }
  }
  const files = { cert: read(certFile, 'TLS certificate file'), key: read(keyFile, 'TLS key file') }
  try {
    // Fails now, in one line, on a file that is no PEM or a key that is not the certificate's.
    createSecureContext(files)
  } catch (err) {
    throw new ConfigError(`TLS certificate ${certFile} with key ${keyFile}: ${(err as Error).message}`)
  }
  return files
}

/**
 * Writes a self-signed certificate for localhost and 127.0.0.1 (EC P-256) and its key (0600), with the system's
 * openssl: Node can make keys but not certificates.
 */
export function writeSelfSigned(certFile: string, keyFile: string, force = false): void {
  for (const f of [certFile, keyFile])
    if (existsSync(f) && !force) throw new ConfigError(`${f} exists; pass --force to overwrite it`)
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', keyFile, '-out', certFile, '-days', String(SELF_SIGNED_DAYS), '-subj', '/CN=localhost'],
        ...['-addext', 'subjectAltName=DNS:localhost,DNS:*.physarum,IP:127.0.0.1,IP:::1']
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30000 }
    )
    chmodSync(keyFile, 0o600)
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    const why =
      e.code === 'ENOENT' ? 'openssl is not installed' : (e.stderr?.toString().trim().split('\n')[0] ?? e.message)
    throw new ConfigError(`cannot write a self-signed certificate: ${why}`)
  }
}
