// A TCP relay on 127.0.0.1 that adds a fixed delay to every chunk in both directions:
// real latency on loopback, for the tests where nearness matters.
import { createServer, connect, type Server, type Socket } from 'node:net'

export interface DelayRelay {
  port: number
  close: () => Promise<void>
}

export async function delayRelay(targetPort: number, oneWayMs: number): Promise<DelayRelay> {
  const sockets = new Set<Socket>()
  const delayed = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk)
      }, oneWayMs)
    })
    from.on('end', () => {
      setTimeout(() => {
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
  })
  await new Promise<void>(resolve =>
    server.listen(0, '127.0.0.1', () => {
      resolve()
    })
  )
  return {
    port: (server.address() as { port: number }).port,
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
