import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { streamFor } from "../../contracts/log.ts"
import { type RuntimeOptions, runLive } from "../../consumers/runtime.ts"
import type { Projection } from "../../projections/projection.ts"
import { type NatsServer, startNatsServer } from "../nats/server.ts"
import { createDatabase, type PostgresServer, type StartPostgresOptions, startPostgres } from "../postgres/database.ts"
import { applyStreams } from "../streams.ts"
import { connectProjector } from "./projector.ts"
import { connectAdmin } from "./stack.ts"

export interface LogStack {
  readonly nats: NatsServer
  readonly admin: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  /** A connection as the least-privilege projector user. */
  readonly projector: NatsConnection
  readonly pg: PostgresServer
  /** A fresh database on the stack's Postgres, dropped with the stack. */
  readonly database: () => Promise<{ readonly url: string; readonly sql: postgres.Sql }>
  /** Runs `projection` live into `sql` until it has committed the stream's current head. */
  readonly projectToHead: (sql: postgres.Sql, projection: Projection, options?: Partial<RuntimeOptions>) => Promise<void>
  readonly dispose: () => Promise<void>
}

/** Runs `projection` live into `sql` until it has committed stream sequence `head`. */
export const projectUntil = async (
  sql: postgres.Sql,
  nc: NatsConnection,
  projection: Projection,
  head: number,
  runtime: Partial<RuntimeOptions> = {}
): Promise<void> => {
  const stop = new AbortController()
  await runLive({
    sql,
    nc,
    projection,
    ...runtime,
    signal: stop.signal,
    onBatch: (batch) => {
      runtime.onBatch?.(batch)
      if (batch.checkpoint >= head) stop.abort()
    },
    onIdle: (checkpoint) => checkpoint >= head && stop.abort()
  })
}

/**
 * The harness of the projection tests and benchmarks: the project's nats-server with the streams
 * declared, and Postgres (`DATABASE_URL`, the project's own, or one passed in to share).
 */
export const startLogStack = async (
  options: { readonly postgres?: StartPostgresOptions; readonly pg?: PostgresServer } = {}
): Promise<LogStack> => {
  const nats = await startNatsServer()
  const admin = await connectAdmin(nats)
  const jsm = await jetstreamManager(admin)
  await applyStreams(jsm)
  const projector = await connectProjector(nats)
  const pg = options.pg ?? (await startPostgres(options.postgres))
  const databases: Array<{ sql: postgres.Sql; drop: () => Promise<void> }> = []
  return {
    nats,
    admin,
    js: jetstream(admin),
    jsm,
    projector,
    pg,
    database: async () => {
      const created = await createDatabase(pg.url)
      const sql = postgres(created.url, { onnotice: () => {} })
      databases.push({ sql, drop: created.drop })
      return { url: created.url, sql }
    },
    projectToHead: async (sql, projection, runtime = {}) =>
      projectUntil(sql, projector, projection, (await jsm.streams.info(streamFor(projection.domain))).state.last_seq, runtime),
    dispose: async () => {
      for (const database of databases) {
        await database.sql.end({ timeout: 5 })
        await database.drop()
      }
      await projector.close()
      await admin.close()
      if (options.pg === undefined) await pg.dispose()
      await nats.dispose()
    }
  }
}
