import { measure } from "./measure.ts"
import { requireAllValid } from "../contracts/contract.ts"
import { cpus } from "node:os"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import postgres from "postgres"
import { applyStreams } from "../infra/streams.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { connectProjector } from "../infra/local/projector.ts"
import { hubspotBatch, oeeWorkload, retailWorkload, warehouseWorkload } from "../infra/local/samples.ts"
import { connectAdmin } from "../infra/local/stack.ts"
import { startNatsServer } from "../infra/nats/server.ts"
import { createDatabase, startPostgres } from "../infra/postgres/database.ts"
import { type ReadEvent, readEventOf } from "../consumers/events.ts"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { runLive } from "../consumers/runtime.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import type { Projection } from "../projections/projection.ts"
import { bulkWrite, mergeRows, tableDdl } from "../projections/statements.ts"
import type { Row } from "../projections/table.ts"
import { oeeProjection } from "../projections/oee/projection.ts"
import { retailProjection } from "../projections/retail/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"

const retail = retailProjection({ latenessMs: 10 * 60_000 })
import { Effect } from "effect"
import { contracts, defaultSources } from "../contracts/sources.ts"
import { toLogMessages } from "../edge/log-message.ts"
import { dropSchema } from "../consumers/registry.ts"
import { quoteIdent } from "../platform/sql.ts"

/**
 * `npm run bench:project`: live projection and rebuild replay throughput of each projection,
 * beside a plain bulk insert of the same rows into Postgres (no log, no dedupe, no checkpoint),
 * measured in the same run on the same server, with the process's peak RSS in each phase.
 * BENCH_WAREHOUSE_EVENTS (default 100000), BENCH_CRM_EVENTS, BENCH_OEE_EVENTS, BENCH_RETAIL_EVENTS (50000 each).
 */

const warehouseEvents = Number(process.env.BENCH_WAREHOUSE_EVENTS ?? "100000")
const crmEvents = Number(process.env.BENCH_CRM_EVENTS ?? "50000")
const oeeEvents = Number(process.env.BENCH_OEE_EVENTS ?? "50000")
const retailEvents = Number(process.env.BENCH_RETAIL_EVENTS ?? "50000")
const CHUNK = 2000

const main = async () => {
  const nats = await startNatsServer()
  const admin = await connectAdmin(nats)
  await applyStreams(await jetstreamManager(admin))
  const projector = await connectProjector(nats)
  const pg = await startPostgres()
  const database = await createDatabase(pg.url, "ingest_bench")
  const sql = postgres(database.url, { onnotice: () => {}, max: 4 })
  const js = jetstream(admin)

  console.log(
    `projection benchmark: ${warehouseEvents} warehouse, ${crmEvents} crm, ${oeeEvents} oee, ${retailEvents} retail events, Postgres ${(await sql`SHOW server_version`)[0]?.server_version}, nats-server ${admin.info?.version}, Node ${process.version}, ${cpus().length} cores`
  )
  const appended = await measure(async () => {
    const warehouseHead = await appendAsEdge(js, "erasure", warehouseWorkload(warehouseEvents))
    let crmHead = 0
    for (let start = 0; start < crmEvents; start += 1000)
      crmHead = await appendAsEdge(js, "hubspot", hubspotBatch(Math.min(1000, crmEvents - start), { firstEventId: start + 1 }))
    return {
      warehouse: warehouseHead,
      crm: crmHead,
      oee: await appendAsEdge(js, "oee", oeeWorkload(oeeEvents)),
      retail: await appendAsEdge(js, "pos", retailWorkload(retailEvents))
    }
  })
  console.log(`appended to the log in ${appended.seconds.toFixed(1)} s`)

  const chunks = <T>(all: ReadonlyArray<T>) =>
    Array.from({ length: Math.ceil(all.length / 1000) }, (_, i) => all.slice(i * 1000, i * 1000 + 1000))
  const inputOf = (projection: Projection) =>
    projection === warehouseProjection
      ? eventsOf("erasure", chunks(warehouseWorkload(warehouseEvents)))
      : projection === oeeProjection
        ? eventsOf("oee", chunks(oeeWorkload(oeeEvents)))
        : projection === retail
          ? eventsOf("pos", chunks(retailWorkload(retailEvents)))
          : eventsOf(
              "hubspot",
              Array.from({ length: Math.ceil(crmEvents / 1000) }, (_, i) =>
                hubspotBatch(Math.min(1000, crmEvents - i * 1000), { firstEventId: i * 1000 + 1 })
              )
            )
  const sizes: Record<string, number> = { warehouse: warehouseEvents, crm: crmEvents, oee: oeeEvents, retail: retailEvents }
  const rows: Array<Array<string>> = []
  const ratios: Array<string> = []
  for (const projection of [warehouseProjection, crmProjection, oeeProjection, retail]) {
    const events = sizes[projection.name] as number
    const head = appended.result[projection.name as "warehouse" | "crm" | "oee" | "retail"]

    const live = await measure(
      () =>
        new Promise<void>((resolve, reject) => {
          const stop = new AbortController()
          runLive({
            sql,
            nc: projector,
            projection,
            batchSize: 2000,
            signal: stop.signal,
            onBatch: (batch) => batch.checkpoint >= head && stop.abort()
          }).then(resolve, reject)
        })
    )
    const rebuild = await measure(() => rebuildProjection({ sql, nc: projector, projection, batchSize: 2000 }))
    const plain = await plainBulkInsert(sql, projection, await inputOf(projection))

    rows.push([
      `${projection.name}: live projection`,
      String(events),
      live.seconds.toFixed(2),
      (events / live.seconds).toFixed(0),
      live.peakMiB.toFixed(0)
    ])
    rows.push([
      `${projection.name}: rebuild replay`,
      String(events),
      rebuild.seconds.toFixed(2),
      (events / rebuild.seconds).toFixed(0),
      rebuild.peakMiB.toFixed(0)
    ])
    rows.push([
      `${projection.name}: plain bulk insert of the same rows`,
      String(events),
      plain.seconds.toFixed(2),
      (events / plain.seconds).toFixed(0),
      plain.peakMiB.toFixed(0)
    ])
    rows.push([
      `  ratio live / plain, rebuild / plain`,
      "",
      "",
      `${((plain.seconds / live.seconds) * 100).toFixed(0)}%, ${((plain.seconds / rebuild.seconds) * 100).toFixed(0)}%`,
      ""
    ])
    ratios.push(`ratio live/${projection.name}: ${((plain.seconds / live.seconds) * 100).toFixed(0)}% of plain bulk insert (goal 50%)`)
    ratios.push(
      `ratio rebuild/${projection.name}: ${((plain.seconds / rebuild.seconds) * 100).toFixed(0)}% of plain bulk insert (goal 100%)`
    )
    if (projection === warehouseProjection)
      ratios.push(
        `rebuild/warehouse at 1,000,000 events: ${((rebuild.seconds * 1_000_000) / events).toFixed(1)} s (extrapolated from ${events.toLocaleString("en")}; goal 20 s)`
      )
  }

  const header = ["scenario", "events", "seconds", "events/s", "peak RSS MiB"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  ")
  console.log(`\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n${rows.map(line).join("\n")}`)
  console.log(`\n${ratios.join("\n")}`)

  await sql.end({ timeout: 5 })
  await database.drop()
  await pg.dispose()
  await projector.close()
  await admin.close()
  await nats.dispose()
}

/** The events as the projection reads them, made in memory from the same payloads the log holds. */
const eventsOf = async (source: string, payloadChunks: ReadonlyArray<ReadonlyArray<unknown>>): Promise<Array<ReadEvent>> => {
  const definition = defaultSources[source]
  if (definition === undefined) throw new Error(source)
  const contract = contracts[definition.contract]
  const events: Array<ReadEvent> = []
  for (const chunk of payloadChunks) {
    const split = await Effect.runPromise(Effect.flatMap(contract.split(chunk), requireAllValid))
    for (const message of toLogMessages(source, contract, split, { receivedAt: new Date().toISOString(), traceId: "0".repeat(32) }))
      events.push(readEventOf({ seq: events.length + 1, subject: message.subject, headers: message.headers, data: message.data }))
  }
  return events
}

/**
 * The baseline: the rows the projection makes of the same events, computed beforehand, written
 * with the same bulk statements into fresh tables — no log read, no dedupe ledger, no checkpoint.
 */
const plainBulkInsert = async (sql: postgres.Sql, projection: Projection, events: ReadonlyArray<ReadEvent>) => {
  const schema = `bench_plain_${projection.name}`
  await dropSchema(sql, schema)
  await sql.unsafe(`CREATE SCHEMA ${quoteIdent(schema)}`)
  for (const table of projection.tables) for (const statement of tableDdl(schema, table)) await sql.unsafe(statement)
  const statements: Array<ReturnType<typeof bulkWrite>> = []
  for (let start = 0; start < events.length; start += CHUNK) {
    const byTable = new Map<string, Array<Row>>()
    for (const event of events.slice(start, start + CHUNK)) {
      const outcome = projection.project(event)
      if (outcome._tag !== "Rows") continue
      for (const [table, rows] of Object.entries(outcome.rows)) byTable.set(table, [...(byTable.get(table) ?? []), ...rows])
    }
    for (const table of projection.tables) {
      const rows = byTable.get(table.name)
      if (rows !== undefined && rows.length > 0) statements.push(bulkWrite(schema, table, mergeRows(table, rows)))
    }
  }
  return measure(async () => {
    for (const statement of statements)
      await sql.unsafe(
        statement.text,
        statement.columns.map((column) => sql.array(column as Array<string>))
      )
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
