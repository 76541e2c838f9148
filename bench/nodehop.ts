// A plain Node.js reverse-proxy hop, a reference for the forwarding benchmark: Node's HTTP
// server in, an undici Pool.stream out, the same header handling as physarum's hops, no
// libp2p. Usage: node build/bench/nodehop.js PORT UPSTREAM_ORIGIN
import { createServer } from 'node:http'
import { Pool } from 'undici'
import { endToEnd, hasBody, relayHead } from '../src/forward/headers.js'

const port = Number(process.argv[2])
const pool = new Pool(process.argv[3], { connections: 256, keepAliveTimeout: 30000, headersTimeout: 0, bodyTimeout: 0 })
const server = createServer({ keepAliveTimeout: 65000 }, (req, res) => {
  pool
    .stream(
      {
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: endToEnd(req.headers),
        body: hasBody(req.headers) ? req : null,
        opaque: res
      },
      ({ statusCode, headers }) => {
        relayHead(res, statusCode, headers, {})
        return res
      }
    )
    .catch((err: Error) => {
      res.destroy(err)
    })
})
server.listen(port, '127.0.0.1', () => {
  process.stderr.write(`node hop listening on ${port}\n`)
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  process.exit(0)
})
