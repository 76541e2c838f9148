// The physarum version, read from package.json (two levels up from build/src; a bundle inlines it).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
export const VERSION: string = (require('../../package.json') as { version: string }).version
