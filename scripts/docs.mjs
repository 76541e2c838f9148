// `npm run docs`: regenerates the README's configuration reference from the schema.
import { readFileSync, writeFileSync } from 'node:fs'
import { withReference } from '../build/src/config/reference.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
writeFileSync(new URL('../README.md', import.meta.url), withReference(readme))
