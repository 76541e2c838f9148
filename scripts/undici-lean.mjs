// What physarum's sources import from 'undici' (Pool, request), for the single
// executable only (scripts/package.mjs points `import … from 'undici'` here).
//
// Why: undici's index loads all of undici (fetch, WebSocket, EventSource, the cache and
// the mocks), and its cookies module reads globalThis.Headers, which makes Node load its
// own internal copy of undici as well: ~2 MB of heap in every daemon for code they never
// run. These are the same modules and the same lines as undici 7's index.js: `request`
// is its makeDispatcher(api.request), and Dispatcher.prototype gets the API methods
// (pool.stream, pool.request) as there. An import of anything else from 'undici' fails
// the bundle build ("No matching export"), so this file cannot silently fall behind.
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js'
import Pool from 'undici/lib/dispatcher/pool.js'
import api from 'undici/lib/api/index.js'
import globalDispatcher from 'undici/lib/global.js'
import util from 'undici/lib/core/util.js'
import errors from 'undici/lib/core/errors.js'

Object.assign(Dispatcher.prototype, api)

const { InvalidArgumentError } = errors

function makeDispatcher (fn) {
  return (url, opts, handler) => {
    if (typeof opts === 'function') {
      handler = opts
      opts = null
    }
    if (!url || (typeof url !== 'string' && typeof url !== 'object' && !(url instanceof URL))) {
      throw new InvalidArgumentError('invalid url')
    }
    if (opts != null && typeof opts !== 'object') {
      throw new InvalidArgumentError('invalid opts')
    }
    if (opts && opts.path != null) {
      if (typeof opts.path !== 'string') {
        throw new InvalidArgumentError('invalid opts.path')
      }
      let path = opts.path
      if (!opts.path.startsWith('/')) {
        path = `/${path}`
      }
      url = new URL(util.parseOrigin(url).origin + path)
    } else {
      if (!opts) {
        opts = typeof url === 'object' ? url : {}
      }
      url = util.parseURL(url)
    }
    const { agent, dispatcher = globalDispatcher.getGlobalDispatcher() } = opts
    if (agent) {
      throw new InvalidArgumentError('unsupported opts.agent. Did you mean opts.client?')
    }
    return fn.call(dispatcher, {
      ...opts,
      origin: url.origin,
      path: url.search ? `${url.pathname}${url.search}` : url.pathname,
      method: opts.method || (opts.body ? 'PUT' : 'GET')
    }, handler)
  }
}

export { Pool }
export const request = makeDispatcher(api.request)
