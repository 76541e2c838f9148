// Docker test helpers: whether an engine answers, a small local test image built from
// Debian's static busybox (no registry needed), and cleanup of labelled containers.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, copyFileSync, mkdirSync, rmSync, chmodSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const TEST_IMAGE = 'physarum-test/httpd:1'

export function dockerReady(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 10000 }).status === 0
}

/** Builds the test image once: busybox httpd on 8080 serving /www, with a slow CGI. */
export function buildTestImage(): void {
  if (spawnSync('docker', ['image', 'inspect', TEST_IMAGE], { stdio: 'ignore' }).status === 0) return
  if (!existsSync('/bin/busybox')) throw new Error("the Docker tests need Debian's busybox-static (/bin/busybox)")
  const dir = mkdtempSync(join(tmpdir(), 'physarum-image-'))
  try {
    copyFileSync('/bin/busybox', join(dir, 'busybox'))
    mkdirSync(join(dir, 'www/cgi-bin'), { recursive: true })
    writeFileSync(join(dir, 'www/index.html'), 'hello from busybox\n')
    writeFileSync(join(dir, 'www/healthz'), 'ok\n')
    writeFileSync(
      join(dir, 'www/cgi-bin/slow'),
      '#!/bin/sh\nsleep 2\necho "Content-Type: text/plain"\necho\necho slow done\n'
    )
    chmodSync(join(dir, 'www/cgi-bin/slow'), 0o755)
    writeFileSync(
      join(dir, 'Dockerfile'),
      [
        'FROM scratch',
        'COPY busybox /bin/busybox',
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        'COPY www /www',
        'EXPOSE 8080',
        'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]'
      ].join('\n') + '\n'
    )
    execFileSync('docker', ['build', '-q', '-t', TEST_IMAGE, dir], {
      stdio: 'pipe',
      env: { ...process.env, DOCKER_BUILDKIT: '0' }
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Containers labelled as created by the allocator `peer` (all states); `host` names another engine (a DOCKER_HOST
 * value).
 */
export function labelled(peer: string, host?: string): string[] {
  const out = execFileSync('docker', [
    ...(host !== undefined ? ['-H', host] : []),
    'ps',
    '-a',
    '-q',
    '--filter',
    `label=physarum.allocator=${peer}`
  ])
    .toString()
    .trim()
  return out === '' ? [] : out.split('\n')
}

export function removeLabelled(peer: string, host?: string): void {
  const ids = labelled(peer, host)
  if (ids.length > 0)
    spawnSync('docker', [...(host !== undefined ? ['-H', host] : []), 'rm', '-f', ...ids], { stdio: 'ignore' })
}

/** Stops an allocator; then no container with its label may be left (any that is, is removed). */
export async function stopAndSweep(
  alloc: { agent: { peer: string }; stop: () => Promise<void> } | undefined
): Promise<void> {
  const peer = alloc?.agent.peer
  await alloc?.stop()
  if (peer === undefined) return
  const left = labelled(peer)
  removeLabelled(peer)
  assert.deepEqual(left, [], 'no container with our label survives the allocator')
}

export function inspect(id: string): {
  HostConfig: { Memory: number; NanoCpus: number; PidsLimit: number; Privileged: boolean; SecurityOpt: string[] | null }
  NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> }
  Mounts: unknown[]
} {
  return JSON.parse(execFileSync('docker', ['inspect', id]).toString())[0]
}
