// What physarum's sources import from 'undici' (Pool, Client, request), for the single
// executable only (scripts/package.mjs points `import … from 'undici'` here).
//
// Why: undici's index loads all of undici (fetch, WebSocket, EventSource, the cache and
// the mocks), and its cookies module reads globalThis.Headers, which makes Node load its
// own internal copy of undici as well: ~2 MB of heap in every daemon for code they never
// run. Here: the Pool and Client classes (Client: the fast path's one connection to an
// allocator's admin API), their request/stream API (attached to Dispatcher.prototype, as
// undici's index does), and a `request(url, opts)` of our own for the two callers that
// use it (health checks, `physarum members`): a URL string and request options, sent by
// undici's global dispatcher. An import of anything else from 'undici' fails the bundle
// build ("No matching export"), so this file cannot silently fall behind.
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js'
import Pool from 'undici/lib/dispatcher/pool.js'
import Client from 'undici/lib/dispatcher/client.js'
import api from 'undici/lib/api/index.js'
import globalDispatcher from 'undici/lib/global.js'

Object.assign(Dispatcher.prototype, api)

export { Pool, Client }

/** `request('http://host:port/path?query', { method, headers, signal, …timeouts })`, as physarum calls it. */
export function request(url, opts = {}) {
  const u = new URL(url)
  return globalDispatcher
    .getGlobalDispatcher()
    .request({ ...opts, origin: u.origin, path: `${u.pathname}${u.search}`, method: opts.method ?? 'GET' })
}
