import type { AddressInfo } from "node:net"
import { serve } from "@hono/node-server"

/** A Node HTTP server listening: its URL and port, and `close`, which also ends idle keep-alive connections. */
export interface Listening {
  readonly url: string
  readonly port: number
  readonly close: () => Promise<void>
}

/** Serves `fetch` (a Hono app's) on `host`:`port` (0: any free port) once it is listening. */
export const listen = async (
  fetch: (request: Request) => Response | Promise<Response>,
  port: number,
  host = "127.0.0.1"
): Promise<Listening> => {
  const server = await new Promise<ReturnType<typeof serve>>((resolveListening) => {
    const listening = serve({ fetch, port, hostname: host }, () => resolveListening(listening))
  })
  const bound = (server.address() as AddressInfo).port
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolveClosed) => {
        server.close(() => resolveClosed())
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
      })
  }
}
