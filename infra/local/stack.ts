import { randomBytes } from "node:crypto"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { defaultSources } from "../../contracts/sources.ts"
import { type NatsServer, type StartNatsOptions, startNatsServer } from "../nats/server.ts"
import { applyStreams, DEFAULT_STREAM_SETTINGS, type StreamSettings, streamDeclarations } from "../streams.ts"
import { type Edge, startEdge } from "./edge.ts"

export interface EdgeStack {
  readonly nats: NatsServer
  readonly edge: Edge
  /** An admin connection for inspecting the log. */
  readonly admin: NatsConnection
  readonly jsm: JetStreamManager
  /** The secret of each default source. */
  readonly secrets: Readonly<Record<string, string>>
  readonly dispose: () => Promise<void>
}

/** A secret of the right form for each default source's scheme. */
export const generateSecrets = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(defaultSources).map(([name, source]) => [
      name,
      source.scheme === "standard-webhooks" ? `whsec_${randomBytes(32).toString("base64")}` : randomBytes(24).toString("hex")
    ])
  )

export const connectAdmin = (nats: NatsServer): Promise<NatsConnection> =>
  connect({ servers: nats.url, user: nats.admin.user, pass: nats.admin.password, name: "ingest-admin" })

/**
 * nats-server with the project's config, the streams declared, and the edge Worker in workerd in
 * front of it: the harness of the tests, the benchmark and `npm run up`.
 */
export const startEdgeStack = async (
  options: {
    settings?: Readonly<Record<string, string>>
    nats?: StartNatsOptions
    streams?: StreamSettings
    secrets?: Record<string, string>
    edgePort?: number
    verbose?: boolean
    /** Keeps the edge's Durable Object storage (its spools) in this directory, across `edge.restart()`. */
    edgePersistDir?: string
  } = {}
): Promise<EdgeStack> => {
  const nats = await startNatsServer(options.nats)
  const admin = await connectAdmin(nats)
  const jsm = await jetstreamManager(admin)
  await applyStreams(jsm, streamDeclarations(options.streams ?? DEFAULT_STREAM_SETTINGS))
  const secrets = options.secrets ?? generateSecrets()
  const edge = await startEdge({
    natsWsUrl: nats.wsUrl,
    natsPassword: nats.edge.password,
    secrets: Object.fromEntries(Object.entries(secrets).map(([name, secret]) => [name, [secret]])),
    ...(options.settings === undefined ? {} : { settings: options.settings }),
    ...(options.edgePort === undefined ? {} : { port: options.edgePort }),
    ...(options.verbose === undefined ? {} : { verbose: options.verbose }),
    ...(options.edgePersistDir === undefined ? {} : { persistDir: options.edgePersistDir })
  })
  return {
    nats,
    edge,
    admin,
    jsm,
    secrets,
    dispose: async () => {
      await edge.dispose()
      if (!admin.isClosed()) await admin.close()
      await nats.dispose()
    }
  }
}
