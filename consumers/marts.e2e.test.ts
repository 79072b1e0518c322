import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import { headers as natsHeaders, type NatsConnection } from "@nats-io/nats-core"
import { jetstream } from "@nats-io/jetstream"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LogHeaders } from "../contracts/log.ts"
import { connectProjector } from "../infra/local/projector.ts"
import { alowareCall, erasureEvents, hubspotBatch, postSigned } from "../infra/local/samples.ts"
import { type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import type { Projection } from "../projections/projection.ts"
import { redriveDeadLetters } from "./apply.ts"
import { activeGeneration } from "./registry.ts"
import { projectionMetrics, serveMetrics } from "./metrics.ts"
import { runLive } from "./runtime.ts"

let stack: EdgeStack
let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql
let projector: NatsConnection
let metrics: ReturnType<typeof projectionMetrics> | undefined
let metricsServer: Server | undefined
const stop = new AbortController()
const running: Array<Promise<void>> = []
const waiters: Array<{ projection: string; seq: number; resolve: () => void }> = []
const checkpoints = new Map<string, number>()

/** Resolves once `projection` has committed every event up to the stream's current head. */
const caughtUp = async (projection: Projection) => {
  const head = (await stack.jsm.streams.info(`INGEST_${projection.domain.toUpperCase()}`)).state.last_seq
  if ((checkpoints.get(projection.name) ?? 0) >= head) return
  await new Promise<void>((resolve) => waiters.push({ projection: projection.name, seq: head, resolve }))
}

const start = (projection: Projection) =>
  running.push(
    runLive({
      sql,
      nc: projector,
      projection,
      batchSize: 200,
      fetchWaitMs: 1000,
      signal: stop.signal,
      onBatch: (result) => {
        metrics?.recordBatch(projection.name, result)
        checkpoints.set(projection.name, result.checkpoint)
        for (const waiter of waiters.filter((w) => w.projection === projection.name && w.seq <= result.checkpoint)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve()
        }
      }
    })
  )

beforeAll(async () => {
  stack = await startEdgeStack()
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { onnotice: () => {}, max: 4 })
  projector = await connectProjector(stack.nats)
  metrics = projectionMetrics(stack.jsm, [warehouseProjection, crmProjection])
  metricsServer = await serveMetrics(metrics.registry, 0, "127.0.0.1")
  start(warehouseProjection)
  start(crmProjection)
})

afterAll(async () => {
  metricsServer?.close()
  stop.abort()
  await Promise.all(running)
  await projector?.close()
  await sql?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
  await stack?.dispose()
})

const plain = <T>(rows: ReadonlyArray<T>) => JSON.parse(JSON.stringify(rows)) as Array<T>

describe("warehouse marts from signed erasure webhooks", () => {
  it("hold exactly the day's counts, per engineer and device type", async () => {
    const events = [
      ...erasureEvents(12, { firstId: 1, day: "2025-01-15" }),
      { id: "intake_1", type: "intake.booked_in", timestamp: "2025-01-15T07:30:00Z", data: { count: 30 } },
      { id: "qa_1", type: "qa.completed", timestamp: "2025-01-15T17:00:00Z", data: { count: 7 } },
      { id: "qa_2", type: "qa.completed", timestamp: "2025-01-16T09:00:00Z", data: { count: 4 } }
    ]
    const response = await postSigned(stack.edge.url, "erasure", events, stack.secrets.erasure as string)
    expect(response.status).toBe(202)
    await caughtUp(warehouseProjection)

    expect(
      plain(await sql`SELECT to_char(date, 'YYYY-MM-DD') AS date, booked_in, erased, qa FROM mart_warehouse.daily_stats ORDER BY date`)
    ).toEqual([
      { date: "2025-01-15", booked_in: 30, erased: 6, qa: 7 },
      { date: "2025-01-16", booked_in: 0, erased: 0, qa: 4 }
    ])
    expect(plain(await sql`SELECT initials, count FROM mart_warehouse.engineer_stats ORDER BY initials`)).toEqual([
      { initials: "AK", count: 2 },
      { initials: "JD", count: 2 },
      { initials: "MR", count: 2 }
    ])
    expect(plain(await sql`SELECT initials, device_type, count FROM mart_warehouse.engineer_stats_type ORDER BY initials`)).toEqual([
      { initials: "AK", device_type: "laptops_desktops", count: 2 },
      { initials: "JD", device_type: "servers", count: 2 },
      { initials: "MR", device_type: "laptops_desktops", count: 2 }
    ])
    const erasures = await sql`SELECT event, count(*)::int AS n FROM mart_warehouse.erasures GROUP BY event ORDER BY event`
    expect(plain(erasures)).toEqual([
      { event: "connected", n: 3 },
      { event: "failure", n: 3 },
      { event: "success", n: 6 }
    ])
    expect(
      plain(
        await sql`SELECT event_id, month, initials, job_id, error_type, duration_seconds::int AS duration_seconds FROM mart_warehouse.erasures WHERE event_id = 'era_3'`
      )
    ).toEqual([{ event_id: "era_3", month: "2025-01", initials: "MR", job_id: "JOB-3", error_type: "drive_locked", duration_seconds: 602 }])
  })

  it("count an event appended again after JetStream's duplicate window once", async () => {
    const [event] = erasureEvents(1, { firstId: 500, day: "2025-01-20" })
    const js = jetstream(stack.admin)
    for (const copy of ["first", "after-the-window"]) {
      const h = natsHeaders()
      h.set(LogHeaders.source, "erasure")
      h.set(LogHeaders.type, "erasure.success")
      h.set(LogHeaders.schema, "warehouse/v1")
      h.set(LogHeaders.key, "era_500")
      h.set(LogHeaders.occurredAt, "2025-01-20T08:00:00.000Z")
      // A different Nats-Msg-Id per copy: what the stream holds once the window has passed.
      await js.publish("ingest.warehouse.erasure.erasure_success", JSON.stringify(event), { msgID: `erasure:era_500:${copy}`, headers: h })
    }
    await caughtUp(warehouseProjection)
    expect(plain(await sql`SELECT erased FROM mart_warehouse.daily_stats WHERE date = '2025-01-20'`)).toEqual([{ erased: 1 }])
    expect(plain(await sql`SELECT count(*)::int AS n FROM mart_warehouse.erasures WHERE event_id = 'era_500'`)).toEqual([{ n: 1 }])
  })

  it("dead-letter a poison event with its reason and project the rest of the batch", async () => {
    const js = jetstream(stack.admin)
    const [good] = erasureEvents(1, { firstId: 600, day: "2025-01-21" })
    const h = natsHeaders()
    h.set(LogHeaders.source, "erasure")
    h.set(LogHeaders.key, "era_poison")
    h.set(LogHeaders.schema, "warehouse/v1")
    await js.publish(
      "ingest.warehouse.erasure.erasure_success",
      '{"id":"era_poison","type":"erasure.success","timestamp":"2025-01-21T08:00:00Z","data":{}}',
      { headers: h }
    )
    const response = await postSigned(stack.edge.url, "erasure", good, stack.secrets.erasure as string)
    expect(response.status).toBe(202)
    await caughtUp(warehouseProjection)
    const dead = await sql`SELECT projection, dedupe_key, reason FROM ingest.dead_letters WHERE dedupe_key = 'erasure:era_poison'`
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ projection: "warehouse" })
    expect(dead[0]?.reason).toMatch(/Missing key/)
    expect(plain(await sql`SELECT erased FROM mart_warehouse.daily_stats WHERE date = '2025-01-21'`)).toEqual([{ erased: 1 }])
  })

  it("re-drive a dead letter once the projection can read it, and keep it while it still cannot", async () => {
    const [letter] = await sql`SELECT id FROM ingest.dead_letters WHERE dedupe_key = 'erasure:era_poison'`
    const id = Number(letter?.id)
    const generation = await activeGeneration(sql, "warehouse")
    if (generation === undefined) throw new Error("no active warehouse generation")

    const unchanged = await redriveDeadLetters(sql, warehouseProjection, generation, [id])
    expect(unchanged).toMatchObject({ redriven: [], stillPoison: [{ id }] })

    // A fixed projection: an erasure that lacks its fields is counted for an unknown device.
    const fixed: Projection = {
      ...warehouseProjection,
      project: (event) => {
        const payload = event.payload as { data: Record<string, unknown> }
        return warehouseProjection.project({
          ...event,
          payload: { ...payload, data: { device_type: "unknown", initials: "NA", job_id: "unknown", ...payload.data } }
        })
      }
    }
    expect(await redriveDeadLetters(sql, fixed, generation, [id])).toEqual({ redriven: [id], stillPoison: [] })
    expect(plain(await sql`SELECT erased FROM mart_warehouse.daily_stats WHERE date = '2025-01-21'`)).toEqual([{ erased: 2 }])
    expect(plain(await sql`SELECT count(*)::int AS open FROM ingest.dead_letters WHERE id = ${id} AND redriven_at IS NULL`)).toEqual([
      { open: 0 }
    ])
    expect(await redriveDeadLetters(sql, fixed, generation, [id])).toEqual({ redriven: [], stillPoison: [] })
    expect(plain(await sql`SELECT erased FROM mart_warehouse.daily_stats WHERE date = '2025-01-21'`)).toEqual([{ erased: 2 }])
  })
})

describe("crm marts from signed HubSpot and Aloware webhooks", () => {
  it("count each activity once by day, agent and metric, with the seed's metric mapping", async () => {
    expect(
      (await postSigned(stack.edge.url, "hubspot", hubspotBatch(8, { firstEventId: 1 }), stack.secrets.hubspot as string)).status
    ).toBe(202)
    const call = alowareCall(4242, "2025-01-15 10:32:00")
    expect((await postSigned(stack.edge.url, "aloware", call, stack.secrets.aloware as string)).status).toBe(202)
    const summary = { ...call, event: "Call Summarized", data: { ...call.data, updated_at: "2025-01-15 10:40:00" } }
    expect((await postSigned(stack.edge.url, "aloware", summary, stack.secrets.aloware as string)).status).toBe(202)
    const text = {
      event: "Text Sent",
      data: { id: 77, type: "text", direction: "outbound", user_id: 17, user_name: "Dana Agent", created_at: "2025-01-15 15:00:00" }
    }
    expect((await postSigned(stack.edge.url, "aloware", text, stack.secrets.aloware as string)).status).toBe(202)
    await caughtUp(crmProjection)

    expect(
      plain(
        await sql`SELECT date_key, agent_id, metric_id, event_count FROM mart_crm.fact_daily_metric ORDER BY date_key, agent_id, metric_id`
      )
    ).toEqual([
      { date_key: 20250115, agent_id: "aloware:17", metric_id: "CALLS", event_count: 1 },
      { date_key: 20250115, agent_id: "aloware:17", metric_id: "TEXTS", event_count: 1 },
      { date_key: 20250116, agent_id: "unassigned", metric_id: "CASES", event_count: 2 },
      { date_key: 20250116, agent_id: "unassigned", metric_id: "CONTACTS", event_count: 2 },
      { date_key: 20250116, agent_id: "unassigned", metric_id: "DEALS", event_count: 2 }
    ])
    expect(plain(await sql`SELECT shift_id, count(*)::int AS n FROM mart_crm.fact_event GROUP BY shift_id ORDER BY shift_id`)).toEqual([
      { shift_id: "EARLY", n: 1 },
      { shift_id: "LATE", n: 1 },
      { shift_id: "NIGHT", n: 6 }
    ])
    expect(plain(await sql`SELECT agent_id, agent_name FROM mart_crm.dim_agent WHERE agent_id = 'aloware:17'`)).toEqual([
      { agent_id: "aloware:17", agent_name: "Dana Agent" }
    ])
    expect(plain(await sql`SELECT date_key, day_name, quarter, is_weekend FROM mart_crm.dim_date ORDER BY date_key`)).toEqual([
      { date_key: 20250115, day_name: "Wednesday", quarter: 1, is_weekend: false },
      { date_key: 20250116, day_name: "Thursday", quarter: 1, is_weekend: false }
    ])
    expect((await sql`SELECT metric_id FROM mart_crm.dim_metric ORDER BY metric_id`).map((row) => row.metric_id)).toEqual([
      "CALLS",
      "CASES",
      "CONTACTS",
      "DEALS",
      "EMAILS",
      "INBOUND_CALLS",
      "TEXTS"
    ])
  })
})

describe("the runtime's Prometheus metrics", () => {
  it("count applied, duplicate and dead-lettered events and show no lag once caught up", async () => {
    await caughtUp(warehouseProjection)
    const address = metricsServer?.address() as AddressInfo
    const response = await fetch(`http://127.0.0.1:${address.port}/metrics`)
    expect(response.status).toBe(200)
    const text = await response.text()
    const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1])
    expect(value('ingest_projection_events_total{projection="warehouse",outcome="applied"}')).toBeGreaterThanOrEqual(16)
    expect(value('ingest_projection_events_total{projection="warehouse",outcome="duplicate"}')).toBeGreaterThanOrEqual(1)
    expect(value('ingest_projection_events_total{projection="warehouse",outcome="dead_letter"}')).toBe(1)
    expect(value('ingest_projection_lag{projection="warehouse"}')).toBe(0)
    expect(text).toMatch(/^ingest_projection_batch_seconds_count\{projection="warehouse"\} \d+$/m)
  })
})
