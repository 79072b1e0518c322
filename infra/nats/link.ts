import { connect, createServer, type Server, type Socket } from "node:net"

/**
 * The network between regions' leaf servers and the hub, made severable: plain TCP forwarders, one
 * per hub server, that every leaf dials instead of the hub's leafnode ports (the hub *advertises*
 * them, so a leaf never learns a way round). `cut(peer)` is a partition of one region as the leaf
 * and the hub see it (their connection drops, and every redial is refused) while both servers
 * keep running, so the region goes on acknowledging locally; `heal(peer)` lets the next redial
 * through. A connection's peer is read from the first line the dialler sends: for a leaf, its
 * `CONNECT {…}` (see {@link leafPeer}); the bytes go on unchanged.
 */
export interface Link {
  /** The local port forwarding to each target, in the targets' order. */
  readonly ports: ReadonlyArray<number>
  /** Destroys `peer`'s live connections and refuses its new ones until {@link Link.heal}. */
  readonly cut: (peer: string) => void
  readonly heal: (peer: string) => void
  readonly isCut: (peer: string) => boolean
  /** Live forwarded connections (of `peer`, or all), for tests and status. */
  readonly connections: (peer?: string) => number
  /** Destroys every connection and stops listening. */
  readonly close: () => Promise<void>
}

export interface LinkTarget {
  readonly host: string
  readonly port: number
}

export interface LinkOptions {
  /** Loopback unless told. */
  readonly host?: string
  /** Who is dialling, from the first line it sends; undefined refuses the connection. {@link leafPeer} unless told. */
  readonly identify?: (firstLine: string) => string | undefined
}

/**
 * The region a leaf connection comes from: the JetStream `domain` of its `CONNECT` (the leaf's
 * region), else its server `name`.
 */
export const leafPeer = (firstLine: string): string | undefined => {
  const match = /^CONNECT\s+(\{.*\})\s*$/.exec(firstLine)
  if (match?.[1] === undefined) return undefined
  try {
    const info = JSON.parse(match[1]) as { domain?: unknown; name?: unknown }
    if (typeof info.domain === "string" && info.domain !== "") return info.domain
    return typeof info.name === "string" && info.name !== "" ? info.name : undefined
  } catch {
    return undefined
  }
}

/** A dialler that has not said who it is within this many bytes is refused: a CONNECT is far shorter. */
const MAX_FIRST_LINE = 64 * 1024

/** Opens a {@link Link} listening on ports the system picks. */
export const openLink = async (targets: ReadonlyArray<LinkTarget>, options: LinkOptions = {}): Promise<Link> => {
  const host = options.host ?? "127.0.0.1"
  const identify = options.identify ?? leafPeer
  const cut = new Set<string>()
  /** Every live pair, with its peer once known. */
  const pairs = new Map<readonly [Socket, Socket], string | undefined>()
  const servers: Array<Server> = []

  const destroy = (pair: readonly [Socket, Socket]) => {
    pairs.delete(pair)
    pair[0].destroy()
    pair[1].destroy()
  }

  const forward = (target: LinkTarget) => (downstream: Socket) => {
    // Upstream at once: the hub speaks first (its INFO), the dialler answers with the line that names it.
    const upstream = connect(target.port, target.host)
    const pair = [downstream, upstream] as const
    pairs.set(pair, undefined)
    // Either side ending (a hub server killed, a leaf restarting) ends the other: no half-open links.
    for (const socket of pair) {
      socket.setNoDelay(true)
      socket.once("error", () => destroy(pair))
      socket.once("close", () => destroy(pair))
    }
    upstream.pipe(downstream)
    let first = Buffer.alloc(0)
    const onFirst = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk])
      const end = first.indexOf("\r\n")
      if (end < 0) {
        if (first.length > MAX_FIRST_LINE) destroy(pair)
        return
      }
      downstream.off("data", onFirst)
      const peer = identify(first.subarray(0, end).toString("utf8"))
      // Refused by closing after the first line: the port stays ours, and the dialler sees a dropped connection.
      if (peer === undefined || cut.has(peer) || !pairs.has(pair)) return destroy(pair)
      pairs.set(pair, peer)
      upstream.write(first)
      downstream.pipe(upstream)
    }
    downstream.on("data", onFirst)
  }

  for (const target of targets) {
    const server = createServer(forward(target))
    await new Promise<void>((listening, failed) => {
      server.once("error", failed)
      server.listen(0, host, () => {
        server.off("error", failed)
        listening()
      })
    })
    servers.push(server)
  }

  return {
    ports: servers.map((server) => {
      const address = server.address()
      if (typeof address !== "object" || address === null) throw new Error("a link forwarder is not listening")
      return address.port
    }),
    cut: (peer) => {
      cut.add(peer)
      for (const [pair, of] of [...pairs]) if (of === peer) destroy(pair)
    },
    heal: (peer) => {
      cut.delete(peer)
    },
    isCut: (peer) => cut.has(peer),
    connections: (peer) => [...pairs.values()].filter((of) => of !== undefined && (peer === undefined || of === peer)).length,
    close: async () => {
      for (const pair of [...pairs.keys()]) destroy(pair)
      await Promise.all(servers.map((server) => new Promise<void>((closed) => server.close(() => closed()))))
    }
  }
}
