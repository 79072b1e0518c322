import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { connectProjector } from "../infra/local/projector.ts"
import { spawnProjector } from "../infra/local/projector-process.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { connectAdmin } from "../infra/local/stack.ts"
import { type NatsServer, startNatsServer } from "../infra/nats/server.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { applyStreams } from "../infra/streams.ts"
import { warehouseProjection } from "../projections/warehouse.ts"
import { runLive } from "./runtime.ts"

const EVENTS = 10_000
const KILLS = 20

let nats: NatsServer
let admin: NatsConnection
let pg: PostgresServer
let head = 0

beforeAll(async () => {
  nats = await startNatsServer()
  admin = await connectAdmin(nats)
  await applyStreams(await jetstreamManager(admin))
  pg = await startPostgres()
  const js = jetstream(admin)
  const workload = warehouseWorkload(EVENTS)
  head = await appendAsEdge(js, "erasure", workload)
  // Every 10th event again, under another message id: resends that came after the dedupe window.
  head = await appendAsEdge(js, "erasure", workload.filter((_, i) => i % 10 === 0), { messageId: (message) => `${message.msgId}:late-resend` })
}, 120_000)

afterAll(async () => {
  await admin?.close()
  await pg?.dispose()
  await nats?.dispose()
})

/** A clean, uninterrupted run of the projection over the same log. */
const cleanRun = async (databaseUrl: string) => {
  const sql = postgres(databaseUrl, { onnotice: () => {} })
  const projector = await connectProjector(nats)
  const stop = new AbortController()
  try {
    await runLive({ sql, nc: projector, projection: warehouseProjection, signal: stop.signal, onBatch: (batch) => batch.checkpoint >= head && stop.abort() })
    return await martSnapshot(sql, warehouseProjection)
  } finally {
    await projector.close()
    await sql.end({ timeout: 5 })
  }
}

describe("a consumer killed with SIGKILL at random points", () => {
  it(`leaves the warehouse marts equal to a clean run after ${KILLS} kills over ${EVENTS} events`, async () => {
    const reference = await createDatabase(pg.url)
    const crashed = await createDatabase(pg.url)
    try {
      const expected = await cleanRun(reference.url)
      expect((expected.erasures as Array<string>).length).toBe(EVENTS - 2 * Math.ceil(EVENTS / 25))

      let kills = 0
      const batchesBetweenKills = () => 1 + Math.floor(Math.random() * 2)
      while (kills < KILLS) {
        const projector = spawnProjector({ nats, databaseUrl: crashed.url, names: ["warehouse"], batchSize: 100 })
        let committed = 0
        const target = batchesBetweenKills()
        await projector.waitFor((line) => line.msg === "batch committed" && ++committed >= target)
        // Land the kill anywhere: between batches, inside a transaction, before an ack.
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)))
        projector.child.kill("SIGKILL")
        await projector.exited
        kills++
      }

      const final = spawnProjector({ nats, databaseUrl: crashed.url, names: ["warehouse"], batchSize: 100 })
      await final.waitFor((line) => line.msg === "batch committed" && Number(line.checkpoint) >= head)
      final.child.kill("SIGTERM")
      const code = await final.exited
      expect(code, final.stderr()).toBe(0)

      const sql = postgres(crashed.url, { onnotice: () => {} })
      try {
        expect(await martSnapshot(sql, warehouseProjection)).toEqual(expected)
        const [state] = await sql`SELECT checkpoint FROM ingest.projections WHERE name = 'warehouse' AND status = 'active'`
        expect(Number(state?.checkpoint)).toBe(head)
      } finally {
        await sql.end({ timeout: 5 })
      }
      expect(kills).toBe(KILLS)
    } finally {
      await reference.drop()
      await crashed.drop()
    }
  }, 300_000)
})
