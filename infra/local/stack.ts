import { randomBytes } from "node:crypto"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { defaultSources, type Scheme, type SourceDefinition } from "../../contracts/sources.ts"
import { type NatsServer, type StartNatsOptions, startNatsServer } from "../nats/server.ts"
import { applyStreams, DEFAULT_STREAM_SETTINGS, type StreamSettings, streamDeclarations } from "../streams.ts"
import { type Edge, startEdge } from "./edge.ts"

export interface EdgeStack {
  readonly nats: NatsServer
  readonly edge: Edge
  /** An admin connection for inspecting the log. */
  readonly admin: NatsConnection
  readonly jsm: JetStreamManager
  /** The current secret of each source. */
  readonly secrets: Readonly<Record<string, string>>
  /** The secrets that verify beside the current one (a rotation in progress), per source. */
  readonly previousSecrets: Readonly<Record<string, ReadonlyArray<string>>>
  readonly dispose: () => Promise<void>
}

/** A new secret of the form `scheme` takes (`user:password` for basic). */
export const generateSecret = (scheme: Scheme): string =>
  scheme === "standard-webhooks"
    ? `whsec_${randomBytes(32).toString("base64")}`
    : scheme === "basic"
      ? `local:${randomBytes(24).toString("hex")}`
      : randomBytes(24).toString("hex")

/** A secret of the right form for each source's scheme (the default sources unless told). */
export const generateSecrets = (
  sources: Readonly<Record<string, Pick<SourceDefinition, "scheme">>> = defaultSources
): Record<string, string> => Object.fromEntries(Object.entries(sources).map(([name, source]) => [name, generateSecret(source.scheme)]))

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
    /** Secrets that verify beside `secrets`' (the edge takes the current one first, then these), as during a rotation. */
    previousSecrets?: Readonly<Record<string, ReadonlyArray<string>>>
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
  const previousSecrets = options.previousSecrets ?? {}
  const edge = await startEdge({
    natsWsUrl: nats.wsUrl,
    natsPassword: nats.edge.password,
    secrets: Object.fromEntries(Object.entries(secrets).map(([name, secret]) => [name, [secret, ...(previousSecrets[name] ?? [])]])),
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
    previousSecrets,
    dispose: async () => {
      await edge.dispose()
      if (!admin.isClosed()) await admin.close()
      await nats.dispose()
    }
  }
}
