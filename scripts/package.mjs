// npm run package: dist/physarum, one executable for Linux x86-64 that needs neither
// Node nor node_modules. The compiled CLI (build/, so run `npm run build` first) is
// bundled by esbuild into one CommonJS file and injected as a Node single executable
// application (SEA) blob into a copy of this node binary.
//
// Why a Node SEA and not `bun build --compile`: measured here (docs/BENCHMARKS.md and
// ../shared/STACK.md) Bun's crypto lacks chacha20-poly1305, so noise falls back to
// pure JS and a libp2p stream moves ~3x less; the SEA runs the very Node the tests use.
import { build } from 'esbuild'
import { inject } from 'postject'
import { execFileSync } from 'node:child_process'
import { copyFileSync, chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs'
import { dirname, join, resolve, sep } from 'node:path'

const dist = 'dist'
const bundle = join(dist, 'physarum.cjs')
const blob = join(dist, 'physarum.blob')
const exe = join(dist, 'physarum')
const started = Date.now()

mkdirSync(dist, { recursive: true })
await build({
  stdin: {
    contents: "import { main } from './build/src/main.js'\nvoid main()\n",
    resolveDir: process.cwd(),
    loader: 'js'
  },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  outfile: bundle,
  logLevel: 'warning',
  plugins: [
    {
      // Left out, as modules that throw when loaded (their users load them in try/catch):
      // the optional native add-ons of dockerode's SSH transport (we talk to the local
      // socket) and the TypeScript compiler that oclif looks for only in development.
      name: 'left-out',
      setup(b) {
        b.onResolve({ filter: /^(cpu-features|typescript)$|\.node$/ }, a => ({ path: a.path, namespace: 'left-out' }))
        b.onLoad({ filter: /.*/, namespace: 'left-out' }, a => ({
          contents: `throw new Error(${JSON.stringify(`${a.path} is not part of the physarum executable`)})`,
          loader: 'js'
        }))
      }
    },
    {
      // Less code held and run by every daemon (idle RSS, docs/BENCHMARKS.md). The whole
      // bundle's source stays on the V8 heap (~1 byte per byte) and its blob pages are read
      // in full at start, so even code that never runs costs memory twice.
      name: 'lean',
      setup(b) {
        // Our `import { Pool, request } from 'undici'`: the two, not all of undici (see the file).
        b.onResolve({ filter: /^undici$/ }, a =>
          a.importer.startsWith(resolve('build') + sep) ? { path: resolve('scripts/undici-lean.mjs') } : undefined
        )
        // dockerode's BuildKit support (buildImage with version '2') needs gRPC and protobufjs,
        // which read .proto files from beside dockerode's sources, so it cannot work from the
        // executable anyway; physarum builds no images. dockerode loads them when it loads, so
        // they are left out as modules that throw when used, not when loaded (~380 kB of bundle).
        b.onResolve({ filter: /^(@grpc\/grpc-js|@grpc\/proto-loader|protobufjs)$/ }, a =>
          /[\\/]dockerode[\\/]lib[\\/]/.test(a.importer) ? { path: a.path, namespace: 'unusable' } : undefined
        )
        b.onLoad({ filter: /.*/, namespace: 'unusable' }, a => ({
          contents: `module.exports = new Proxy({}, { get () { throw new Error(${JSON.stringify(`${a.path} (Docker BuildKit) is not part of the physarum executable`)}) } })`,
          loader: 'js'
        }))
        // docker-modem's SSH transport (DOCKER_HOST=ssh://…) loads ssh2, and with it a 16 MB
        // WebAssembly heap for poly1305, whenever docker-modem loads: load it on first use.
        b.onResolve({ filter: /^\.\/ssh$/ }, async a => {
          if (!/[\\/]docker-modem[\\/]lib[\\/]modem\.js$/.test(a.importer) || a.pluginData === 'real') return undefined
          const real = await b.resolve(a.path, { resolveDir: a.resolveDir, kind: a.kind, pluginData: 'real' })
          if (real.errors.length > 0) return { errors: real.errors }
          return { path: real.path, namespace: 'on-first-use' }
        })
        b.onLoad({ filter: /.*/, namespace: 'on-first-use' }, a => ({
          contents: `let ssh\nmodule.exports = function (opt) { return (ssh ??= require(${JSON.stringify(a.path)}))(opt) }`,
          loader: 'js',
          resolveDir: dirname(a.path)
        }))
      }
    }
  ],
  // A CommonJS bundle has no import.meta: give it the bundle's own URL.
  define: { 'import.meta.url': '__physarum_url' },
  // oclif checks the Node version against its own package.json on disk; the version
  // inside the executable is fixed, and the file is not there.
  banner: {
    js: 'const __physarum_url = require("node:url").pathToFileURL(__filename).href; process.env.OCLIF_DISABLE_ENGINE_WARNING = "1";'
  }
})

writeFileSync(
  join(dist, 'sea-config.json'),
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true
  })
)
execFileSync(process.execPath, ['--experimental-sea-config', join(dist, 'sea-config.json')], { stdio: 'inherit' })

rmSync(exe, { force: true })
copyFileSync(process.execPath, exe)
chmodSync(exe, 0o755)
await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
})
for (const f of [blob, join(dist, 'sea-config.json')]) rmSync(f, { force: true })

const mb = (statSync(exe).size / 1048576).toFixed(0)
console.log(`${exe}: ${mb} MB, node ${process.version}, built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
