import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { connectProjector } from "../infra/local/projector.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { connectAdmin } from "../infra/local/stack.ts"
import { type NatsServer, startNatsServer } from "../infra/nats/server.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { applyStreams } from "../infra/streams.ts"
import { warehouseProjection } from "../projections/warehouse.ts"
import { runLive } from "./runtime.ts"

let nats: NatsServer
let admin: NatsConnection
let projector: NatsConnection
let pg: PostgresServer
let head = 0

beforeAll(async () => {
  nats = await startNatsServer()
  admin = await connectAdmin(nats)
  await applyStreams(await jetstreamManager(admin))
  projector = await connectProjector(nats)
  // This test stops and restarts Postgres, so it always runs its own.
  pg = await startPostgres({ forceEmbedded: true })
  head = await appendAsEdge(jetstream(admin), "erasure", warehouseWorkload(3000))
}, 120_000)

afterAll(async () => {
  await projector?.close()
  await admin?.close()
  await pg?.dispose()
  await nats?.dispose()
})

const project = (url: string, hooks: { onFirstBatch?: () => void; onRetry?: () => void } = {}) => {
  const sql = postgres(url, { onnotice: () => {}, connect_timeout: 2 })
  const stop = new AbortController()
  let first = true
  const done = runLive({
    sql,
    nc: projector,
    projection: warehouseProjection,
    batchSize: 100,
    signal: stop.signal,
    onBatch: (batch) => {
      if (first) {
        first = false
        hooks.onFirstBatch?.()
      }
      if (batch.checkpoint >= head) stop.abort()
    },
    onRetry: () => hooks.onRetry?.()
  })
  return { sql, done }
}

describe("Postgres stopped and restarted mid-run", () => {
  it("makes the consumer wait and resume, and the marts come out exact", async () => {
    const reference = await createDatabase(pg.url)
    const interrupted = await createDatabase(pg.url)
    try {
      const clean = project(reference.url)
      await clean.done
      const expected = await martSnapshot(clean.sql, warehouseProjection)
      await clean.sql.end({ timeout: 5 })

      let retries = 0
      let sawRetries: () => void = () => {}
      const retried = new Promise<void>((resolve) => (sawRetries = resolve))
      let firstBatch: () => void = () => {}
      const started = new Promise<void>((resolve) => (firstBatch = resolve))
      const run = project(interrupted.url, {
        onFirstBatch: () => firstBatch(),
        onRetry: () => {
          if (++retries === 3) sawRetries()
        }
      })
      await started
      await pg.stop()
      await retried
      await pg.start()
      await run.done

      expect(retries).toBeGreaterThanOrEqual(3)
      expect(await martSnapshot(run.sql, warehouseProjection)).toEqual(expected)
      await run.sql.end({ timeout: 5 })
    } finally {
      await reference.drop()
      await interrupted.drop()
    }
  }, 180_000)
})
