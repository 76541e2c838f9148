// A TCP relay on 127.0.0.1 that adds a fixed delay to every chunk in both directions:
// real latency on loopback, for the tests where nearness matters. It can also freeze —
// its connections stay open and nothing passes, as with a process stopped by SIGSTOP —
// and thaw again.
import { createServer, connect, type Server, type Socket } from 'node:net'

export interface DelayRelay {
  port: number
  /** Stops reading on every connection, open and new, until thaw(): the peer behind it is unresponsive. */
  freeze: () => void
  thaw: () => void
  close: () => Promise<void>
}

export async function delayRelay(targetPort: number, oneWayMs: number): Promise<DelayRelay> {
  const sockets = new Set<Socket>()
  let frozen = false
  const later = (fn: () => void, ms: number): void => {
    if (ms <= 0) fn()
    else setTimeout(fn, ms)
  }
  const delayed = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      later(() => {
        if (!to.destroyed) to.write(chunk)
      }, oneWayMs)
    })
    from.on('end', () => {
      later(() => {
        to.end()
      }, oneWayMs)
    })
    from.on('error', () => {
      to.destroy()
    })
    from.on('close', () => {
      setTimeout(() => {
        to.destroy()
      }, oneWayMs + 5)
    })
  }
  const server: Server = createServer(inbound => {
    const outbound = connect(targetPort, '127.0.0.1')
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.setNoDelay(true)
      s.once('close', () => sockets.delete(s))
    }
    delayed(inbound, outbound)
    delayed(outbound, inbound)
    if (frozen) for (const s of [inbound, outbound]) s.pause()
  })
  await new Promise<void>(resolve =>
    server.listen(0, '127.0.0.1', () => {
      resolve()
    })
  )
  return {
    port: (server.address() as { port: number }).port,
    freeze: () => {
      frozen = true
      for (const s of sockets) s.pause()
    },
    thaw: () => {
      frozen = false
      for (const s of sockets) s.resume()
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve =>
        server.close(() => {
          resolve()
        })
      )
    }
  }
}
