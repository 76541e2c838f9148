// The physarum package description and version (a bundle inlines package.json).
import pkg from '../../package.json' with { type: 'json' }

export const PACKAGE = pkg
export const VERSION: string = pkg.version
