// hello-world-server: the demo app that ships with physarum, and the test app of its
// suites. Listens on $HOST:$PORT (default 127.0.0.1:8080; its images set HOST=0.0.0.0,
// as a container's published port needs). Routes:
//   GET /hello            "hello world"
//   GET /healthz          "ok"
//   ANY /echo             the request as JSON (method, url, headers, body length, sha256)
//   GET /bytes?n=N        N bytes, streamed in 64 KiB chunks
//   GET /slow?ms=M        answers after M milliseconds
//   GET /sse?n=N&ms=M     N server-sent events, M ms apart
//   ANY /status?code=N    an empty response with status N (e.g. 204, 304, 418)
//   GET /redirect         302 to /hello
import { createServer } from 'node:http'
import { createHash } from 'node:crypto'

const port = Number(process.env.PORT ?? 8080)
const instance = process.env.PHYSARUM_INSTANCE ?? 'local'

const server = createServer((req, res) => {
  let url
  try {
    url = new URL(req.url ?? '/', 'http://app')
  } catch {
    res.statusCode = 400
    res.end('bad request target\n')
    return
  }
  const q = (k, d) => Number(url.searchParams.get(k) ?? d)
  res.setHeader('x-instance', instance)
  switch (url.pathname) {
    case '/hello':
      res.end('hello world\n')
      return
    case '/healthz':
      res.end('ok\n')
      return
    case '/echo': {
      const hash = createHash('sha256')
      let length = 0
      req.on('data', c => {
        length += c.length
        hash.update(c)
      })
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(
          JSON.stringify({ method: req.method, url: req.url, headers: req.headers, length, sha256: hash.digest('hex') })
        )
      })
      return
    }
    case '/bytes': {
      let left = q('n', 0)
      const chunk = Buffer.alloc(65536, 120)
      res.setHeader('content-length', String(left))
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length)
          left -= n
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump)
            return
          }
        }
        res.end()
      }
      pump()
      return
    }
    case '/slow':
      setTimeout(
        () => {
          res.end(`slept ${q('ms', 1000)} ms\n`)
        },
        q('ms', 1000)
      )
      return
    case '/sse': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      let i = 0
      const n = q('n', 3)
      const t = setInterval(
        () => {
          res.write(`data: event ${i}\n\n`)
          if (++i >= n) {
            clearInterval(t)
            res.end()
          }
        },
        q('ms', 100)
      )
      req.on('close', () => {
        clearInterval(t)
      })
      return
    }
    case '/status':
      res.statusCode = q('code', 200)
      res.end()
      return
    case '/redirect':
      res.writeHead(302, { location: '/hello' })
      res.end()
      return
    default:
      res.statusCode = 404
      res.end('not found\n')
  }
})

server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
  console.log(`hello-world-server listening on ${server.address().port}`)
})
const stop = () => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
