import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { headerValues } from "../contracts/log.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { hubspotBatch, warehouseWorkload } from "../infra/local/samples.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import type { Projection } from "../projections/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { applyBatch } from "./apply.ts"
import { readEventOf } from "./events.ts"
import { projectionStatus } from "./status.ts"
import { rebuildProjection, switchBackoffMs } from "./rebuild.ts"
import { generations } from "./registry.ts"
import { runLive } from "./runtime.ts"

let stack: LogStack
let database: { readonly url: string; readonly sql: postgres.Sql }
let sql: postgres.Sql
let projector: NatsConnection
const stop = new AbortController()
const live: Array<Promise<void>> = []
const checkpoints = new Map<string, number>()
const waiters: Array<{ name: string; seq: number; resolve: () => void }> = []
const heads = new Map<string, number>()

const caughtUp = (projection: Projection) =>
  new Promise<void>((resolve) => {
    const seq = heads.get(projection.domain) ?? 0
    if ((checkpoints.get(projection.name) ?? 0) >= seq) return resolve()
    waiters.push({ name: projection.name, seq, resolve })
  })

beforeAll(async () => {
  stack = await startLogStack()
  database = await stack.database()
  sql = database.sql
  projector = stack.projector
  const js = stack.js
  heads.set("warehouse", await appendAsEdge(js, "erasure", warehouseWorkload(6000)))
  let crmHead = 0
  for (let batch = 0; batch < 20; batch++) crmHead = await appendAsEdge(js, "hubspot", hubspotBatch(100, { firstEventId: batch * 100 + 1 }))
  heads.set("crm", crmHead)
  for (const projection of [warehouseProjection, crmProjection]) {
    live.push(
      runLive({
        sql,
        nc: projector,
        projection,
        batchSize: 250,
        signal: stop.signal,
        onBatch: (batch) => {
          checkpoints.set(projection.name, batch.checkpoint)
          for (const waiter of waiters.filter((w) => w.name === projection.name && w.seq <= batch.checkpoint)) {
            waiters.splice(waiters.indexOf(waiter), 1)
            waiter.resolve()
          }
        }
      })
    )
  }
  await caughtUp(warehouseProjection)
  await caughtUp(crmProjection)
}, 120_000)

afterAll(async () => {
  stop.abort()
  await Promise.all(live)
  await stack?.dispose()
})

/** Reads the marts in a loop until `until` settles; returns every read that was not the full table. */
const readWhile = async (probe: string, expected: string, until: Promise<unknown>) => {
  const reader = postgres(database.url, { onnotice: () => {}, max: 1 })
  const wrong: Array<string> = []
  let reads = 0
  let done = false
  void until.finally(() => (done = true))
  try {
    while (!done) {
      const [row] = await reader.unsafe(probe)
      const seen = JSON.stringify(row)
      reads++
      if (seen !== expected) wrong.push(seen)
    }
  } finally {
    await reader.end({ timeout: 5 })
  }
  return { wrong, reads }
}

describe("rebuilding a projection from the log", () => {
  const cases: ReadonlyArray<{ projection: Projection; probe: string }> = [
    {
      projection: warehouseProjection,
      probe: `SELECT (SELECT count(*) FROM mart_warehouse.erasures) AS erasures, (SELECT sum(erased) FROM mart_warehouse.daily_stats) AS erased, (SELECT sum(count) FROM mart_warehouse.engineer_stats_type) AS by_type`
    },
    {
      projection: crmProjection,
      probe: `SELECT (SELECT count(*) FROM mart_crm.fact_event) AS facts, (SELECT sum(event_count) FROM mart_crm.fact_daily_metric) AS counted, (SELECT count(*) FROM mart_crm.dim_date) AS days`
    }
  ]

  for (const { projection, probe } of cases) {
    it(`${projection.name}: yields marts identical to the live ones, and readers never see an empty or partial table`, async () => {
      const before = await martSnapshot(sql, projection)
      const [full] = await sql.unsafe(probe)
      const expected = JSON.stringify(full)
      const rebuild = rebuildProjection({ sql, nc: projector, projection, batchSize: 500 })
      const { wrong, reads } = await readWhile(probe, expected, rebuild)
      const result = await rebuild

      expect(reads).toBeGreaterThan(10)
      expect(wrong).toEqual([])
      expect(await martSnapshot(sql, projection)).toEqual(before)
      const generations = await sql`SELECT generation, status FROM ingest.projections WHERE name = ${projection.name} ORDER BY generation`
      expect(generations.map((row) => [Number(row.generation), row.status])).toEqual([[result.generation, "active"]])
      expect(result.dropped).toEqual([`proj_${projection.name}_g${result.generation - 1}`])
      const [{ present }] =
        (await sql`SELECT count(*)::int AS present FROM information_schema.schemata WHERE schema_name = ${result.dropped[0] ?? ""}`) as unknown as [
          { present: number }
        ]
      expect(present).toBe(0)
    })
  }

  it("leaves the live consumer projecting into the new generation", async () => {
    heads.set(
      "warehouse",
      await appendAsEdge(stack.js, "erasure", [
        { id: "after_rebuild", type: "qa.completed", timestamp: "2025-03-01T09:00:00Z", data: { count: 9 } }
      ])
    )
    await caughtUp(warehouseProjection)
    expect(JSON.parse(JSON.stringify(await sql`SELECT qa FROM mart_warehouse.daily_stats WHERE date = '2025-03-01'`))).toEqual([{ qa: 9 }])
  })

  it("drops a generation left behind by a rebuild that died, and refuses to run twice at once", async () => {
    const { createGeneration } = await import("./registry.ts")
    const orphan = await createGeneration(sql, warehouseProjection)
    let second: Promise<string> | undefined
    const result = await rebuildProjection({
      sql,
      nc: projector,
      projection: warehouseProjection,
      batchSize: 500,
      // Progress means the first rebuild holds the lock: start a second one then.
      onProgress: () => {
        second ??= rebuildProjection({ sql, nc: projector, projection: warehouseProjection }).then(
          () => "ran",
          (error: Error) => error.message
        )
      }
    })
    expect(await second).toBe("another rebuild of warehouse is running")
    const schemas = await sql`SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'proj_warehouse_%'`
    expect(schemas.map((row) => row.schema_name)).toEqual([result.schema])
    const rows = await sql`SELECT generation, status FROM ingest.projections WHERE name = 'warehouse'`
    expect(rows.map((row) => [Number(row.generation), row.status])).toEqual([[result.generation, "active"]])
    expect(orphan.status).toBe("building")
  })
})

describe("a rebuild's switch while readers stream from the old marts", () => {
  it("tries again after a pause that grows, holds no reader back between tries, says so in status, and switches once they finish", async () => {
    const { sql: fresh } = await stack.database()
    await stack.projectToHead(fresh, warehouseProjection)
    const before = await martSnapshot(fresh, warehouseProjection)
    // A reader in the middle of a long read of the old marts: its transaction holds the views.
    let finishReading: () => void = () => {}
    const reading = new Promise<void>((resolve) => (finishReading = resolve))
    let readerHolds: () => void = () => {}
    const holding = new Promise<void>((resolve) => (readerHolds = resolve))
    const readerDone = fresh.begin(async (tx) => {
      await tx`SELECT count(*) FROM mart_warehouse.erasures`
      readerHolds()
      await reading
    })
    await holding
    const waits: Array<{
      attempt: number
      nextAttemptInMs: number
      waiting: string | null
      tries: number
      blocked: number
      readerRows: number
    }> = []
    const rebuilt = rebuildProjection({
      sql: fresh,
      nc: stack.projector,
      projection: warehouseProjection,
      switchLockTimeoutMs: 200,
      onSwitchWait: async (wait) => {
        const [status] = await projectionStatus(fresh, stack.projector, [warehouseProjection])
        const [{ blocked }] =
          (await fresh`SELECT count(*)::int AS blocked FROM pg_locks l JOIN pg_namespace n ON n.oid = (SELECT relnamespace FROM pg_class WHERE oid = l.relation)
                                            WHERE NOT l.granted AND n.nspname = 'mart_warehouse'`) as unknown as [{ blocked: number }]
        // A new reader between tries is not held back by the switch.
        const [{ rows }] = (await fresh`SELECT count(*)::int AS rows FROM mart_warehouse.daily_stats`) as unknown as [{ rows: number }]
        waits.push({
          ...wait,
          waiting: status?.building[0]?.switchWaitingSince ?? null,
          tries: status?.building[0]?.switchAttempts ?? 0,
          blocked,
          readerRows: rows
        })
        if (waits.length === 2) finishReading()
      }
    })
    const result = await rebuilt
    await readerDone
    expect(waits.map((wait) => [wait.attempt, wait.nextAttemptInMs, wait.tries, wait.blocked])).toEqual([
      [0, 1000, 1, 0],
      [1, 2000, 2, 0]
    ])
    expect(waits.every((wait) => wait.waiting !== null && wait.readerRows > 0)).toBe(true)
    expect(result.dropped).toHaveLength(1)
    expect(await martSnapshot(fresh, warehouseProjection)).toEqual(before)
    expect((await projectionStatus(fresh, stack.projector, [warehouseProjection]))[0]?.building).toEqual([])
  }, 60_000)

  it("waits 1 s after the first try, doubling to at most 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map(switchBackoffMs)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
  })

  it("finishes and switches when a batch it retried had in fact committed (its position taken from what is committed)", async () => {
    const { sql: fresh } = await stack.database()
    await stack.projectToHead(fresh, warehouseProjection)
    const before = await martSnapshot(fresh, warehouseProjection)
    const head = heads.get("warehouse") as number
    const log: Array<ReturnType<typeof readEventOf>> = []
    for (let seq = 1; seq <= head; seq++) {
      const stored = await stack.jsm.streams.getMessage("INGEST_WAREHOUSE", { seq })
      log.push(
        readEventOf({ seq, subject: stored?.subject as string, headers: headerValues(stored?.header), data: stored?.string() as string })
      )
    }
    const [live] = await generations(fresh, "warehouse")
    // The generation the rebuild makes: the next one, building.
    const building = {
      ...(live as NonNullable<typeof live>),
      generation: (live?.generation ?? 0) + 1,
      schema: `proj_warehouse_g${(live?.generation ?? 0) + 1}`,
      status: "building" as const
    }
    let interfered = false
    let interfering: Promise<unknown> = Promise.resolve()
    const result = await rebuildProjection({
      sql: fresh,
      nc: stack.projector,
      projection: warehouseProjection,
      batchSize: 500,
      // Batch by batch, as the catch-up after a bulk load and its fallback run.
      bulk: false,
      // Right after a batch, the next 100 events are committed into the building generation behind the
      // rebuild's back, as when a commit succeeds and its answer is lost: its next batch finds the checkpoint moved.
      onProgress: (progress) => {
        if (interfered || progress.position >= head - 100) return
        interfering = applyBatch(
          fresh,
          warehouseProjection,
          building,
          progress.position,
          log.slice(progress.position, progress.position + 100),
          "rebuild"
        ).then(
          () => (interfered = true),
          () => undefined
        )
      }
    })
    await interfering
    expect(interfered).toBe(true)
    expect(result.events).toBe(head)
    expect(await martSnapshot(fresh, warehouseProjection)).toEqual(before)
  }, 60_000)
})
