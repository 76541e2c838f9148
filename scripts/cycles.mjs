// Import-cycle check of src/ (run by npm test): no cycle between files, and none between
// sibling folders at any depth (cluster/ → config/ → cluster/ is one even when no two
// files form a loop). Type-only imports count too: a layer that needs another's types
// depends on it. Imports are read with TypeScript's own pre-processor, not by regex.
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import ts from 'typescript'

const root = resolve(dirname(new URL(import.meta.url).pathname), '..')
const src = join(root, 'src')

function walk(dir) {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mjs)$/.test(name) ? [p] : []
  })
}

const files = walk(src)
const edges = new Map(files.map(f => [f, new Set()]))
for (const f of files) {
  for (const { fileName } of ts.preProcessFile(readFileSync(f, 'utf8'), true, true).importedFiles) {
    if (!fileName.startsWith('.')) continue
    const target = resolve(dirname(f), fileName).replace(/\.js$/, '.ts')
    if (edges.has(target)) edges.get(f).add(target)
  }
}

/** Strongly connected components with more than one node (Tarjan). */
function cycles(graph) {
  let index = 0
  const idx = new Map()
  const low = new Map()
  const stack = []
  const on = new Set()
  const out = []
  const visit = v => {
    idx.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)))
    }
    if (low.get(v) === idx.get(v)) {
      const scc = []
      let w
      do {
        w = stack.pop()
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1) out.push(scc)
    }
  }
  for (const v of graph.keys()) if (!idx.has(v)) visit(v)
  return out
}

// Sibling-folder edges: for a → b, below their common folder, the first folder of each path.
const folders = new Map()
for (const [a, targets] of edges) {
  for (const b of targets) {
    const pa = relative(src, a).split(sep)
    const pb = relative(src, b).split(sep)
    let i = 0
    while (i < pa.length - 1 && i < pb.length - 1 && pa[i] === pb[i]) i++
    if (i >= pa.length - 1 || i >= pb.length - 1) continue // one of them is a file in the common folder
    const fa = pa.slice(0, i + 1).join('/')
    const fb = pb.slice(0, i + 1).join('/')
    if (!folders.has(fa)) folders.set(fa, new Set())
    folders.get(fa).add(fb)
  }
}

const rel = f => relative(root, f)
const fileCycles = cycles(edges).map(c => c.map(rel))
const folderCycles = cycles(folders).map(c => c.map(f => `src/${f}/`))
for (const c of fileCycles) console.error(`import cycle between files: ${c.join(' ↔ ')}`)
for (const c of folderCycles) {
  console.error(`import cycle between folders: ${c.join(' ↔ ')}`)
  for (const [a, targets] of edges) {
    for (const b of targets) {
      const fa = c.find(x => rel(a).startsWith(x))
      const fb = c.find(x => rel(b).startsWith(x))
      if (fa !== undefined && fb !== undefined && fa !== fb) console.error(`  ${rel(a)} → ${rel(b)}`)
    }
  }
}
if (fileCycles.length + folderCycles.length > 0) process.exit(1)
console.log(`no import cycles among ${files.length} files of src/`)
