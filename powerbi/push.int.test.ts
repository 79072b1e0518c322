import type postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { activeGeneration } from "../consumers/registry.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { LOCAL_WORKSPACE, type LocalPowerBi, mirrorOf, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { alowareCall, hubspotBatch, retailWorkload } from "../infra/local/samples.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import type { Projection } from "../projections/projection.ts"
import { projections } from "../projections/index.ts"
import { crmPushDataset, retailPushDataset } from "./datasets.ts"
import { ensurePushTables, pusher, pushStatus, recordDataset } from "./pusher.ts"
import { powerBiSink, type PushSink } from "./sink.ts"

let stack: LogStack
let sql: postgres.Sql
let powerbi: LocalPowerBi
let datasetId: string | undefined

beforeAll(async () => {
  stack = await startLogStack()
  sql = (await stack.database()).sql
  // An emulated hour passes in a second: the governor's pacing takes milliseconds.
  powerbi = await startLocalPowerBi({ speed: 3600 })
  await ensurePushTables(sql)
})

afterAll(async () => {
  await powerbi?.close()
  await stack?.dispose()
})

const sinkOf = (): PushSink => powerBiSink(powerbi.client(), LOCAL_WORKSPACE, crmPushDataset, datasetId)

const newPusher = (sink: PushSink = sinkOf()) => pusher({ sql, sink, spec: crmPushDataset, clock: powerbi.clock, sleep: powerbi.sleep })

const provision = async (sink: PushSink) => {
  const report = await sink.provision(false)
  datasetId = report.datasetId
  await recordDataset(sql, crmPushDataset, LOCAL_WORKSPACE, report.datasetId)
  return report
}

const rowsInEmulator = async (table: string): Promise<ReadonlyArray<Record<string, unknown>>> =>
  powerbi.emulator.tableRows(LOCAL_WORKSPACE, datasetId as string, table) ?? []

/** Every pushed table of the dataset holds exactly the active generation's mart rows: every column, every row, none twice. */
const expectMirror = async () => {
  for (const { table, mart, pushed } of await mirrorOf(sql, powerbi.emulator, crmPushDataset, datasetId as string))
    expect({ table, rows: pushed }).toEqual({ table, rows: mart })
}

describe("the Power BI push sink", () => {
  it("provisions the seed's dataset and loads every mart row, seeded dimensions included", async () => {
    await appendAsEdge(stack.js, "hubspot", hubspotBatch(40))
    await appendAsEdge(stack.js, "aloware", [alowareCall(1), alowareCall(2, "2025-01-16 22:30:00")])
    await stack.projectToHead(sql, crmProjection)
    const sink = sinkOf()
    const report = await provision(sink)
    expect(report).toMatchObject({ dataset: "Mesh CRM v1", created: true, drift: [] })
    const pushed = await newPusher(sink).round()
    expect(pushed).toBeGreaterThan(40)
    await expectMirror()
    expect((await rowsInEmulator("DimMetric")).map((row) => row.metric_id)).toContain("CALLS")
    expect((await rowsInEmulator("FactEvent")).length).toBe(32)
  })

  it("appends only what live batches add afterwards, through the change feed, without reloading", async () => {
    const before = await pushStatus(sql)
    await appendAsEdge(stack.js, "hubspot", hubspotBatch(20, { firstEventId: 1001, portalId: 777 }))
    await stack.projectToHead(sql, crmProjection)
    const pushed = await newPusher().round()
    expect(pushed).toBe(15)
    await expectMirror()
    const after = await pushStatus(sql)
    const fact = (status: typeof after) => status.find((row) => row.table === "fact_event")
    expect(fact(after)?.reloads).toBe(fact(before)?.reloads)
    expect(fact(after)?.backlog).toBe(0)
    expect(await sql`SELECT count(*)::int AS n FROM ingest.changes WHERE projection = 'crm'`).toEqual([{ n: 0 }])
  })

  it("pushes a fact only once the dimension rows it references are in Power BI", async () => {
    const sink = sinkOf()
    const orphans: Array<string> = []
    const watching: PushSink = {
      ...sink,
      push: async (table, rows) => {
        if (table === "FactEvent") {
          const keys = (dimension: string, column: string) =>
            new Set(powerbi.emulator.tableRows(LOCAL_WORKSPACE, datasetId as string, dimension)?.map((row) => row[column]))
          const [agents, dates, metrics, shifts] = [
            keys("DimAgent", "agent_id"),
            keys("DimDate", "date_key"),
            keys("DimMetric", "metric_id"),
            keys("DimShift", "shift_id")
          ]
          for (const row of rows)
            if (!agents.has(row.agent_id) || !dates.has(row.date_key) || !metrics.has(row.metric_id) || !shifts.has(row.shift_id))
              orphans.push(String(row.event_id))
        }
        await sink.push(table, rows)
      }
    }
    // A new agent and a new day, in the same batches as the facts that reference them.
    await appendAsEdge(stack.js, "aloware", [
      {
        ...alowareCall(50, "2025-03-01 23:10:00"),
        data: { ...alowareCall(50, "2025-03-01 23:10:00").data, user_id: 99, user_name: "New Agent" }
      }
    ])
    await appendAsEdge(stack.js, "hubspot", hubspotBatch(8, { firstEventId: 5001, occurredAt: Date.parse("2025-03-02T05:00:00Z") }))
    await stack.projectToHead(sql, crmProjection)
    expect(await newPusher(watching).round()).toBeGreaterThan(6)
    expect(orphans).toEqual([])
    await expectMirror()
  })

  it("reloads a dimension whose row changed in the marts, since Power BI cannot update a pushed row", async () => {
    await appendAsEdge(stack.js, "aloware", [{ ...alowareCall(3), data: { ...alowareCall(3).data, user_name: "Dana Renamed" } }])
    await stack.projectToHead(sql, crmProjection)
    await newPusher().round()
    await expectMirror()
    expect((await rowsInEmulator("DimAgent")).find((row) => row.agent_id === "aloware:17")?.agent_name).toBe("Dana Renamed")
    expect((await pushStatus(sql)).find((row) => row.table === "dim_agent")?.reloads).toBe(2)
  })

  it("after a rebuild's switch, reloads the dataset from the new generation", async () => {
    await rebuildProjection({ sql, nc: stack.projector, projection: crmProjection })
    await newPusher().round()
    await expectMirror()
    const generation = (await activeGeneration(sql, "crm"))?.generation
    expect((await pushStatus(sql)).every((row) => row.generation === generation)).toBe(true)
  })

  it("blocks a table at a row Power BI would refuse, naming the row, the column and the limit, and pushes nothing behind it", async () => {
    const long = "x".repeat(4001)
    await appendAsEdge(stack.js, "aloware", [{ ...alowareCall(60), data: { ...alowareCall(60).data, user_id: 77, user_name: long } }])
    await stack.projectToHead(sql, crmProjection)
    await newPusher().round()
    const status = await pushStatus(sql)
    expect(status.find((row) => row.table === "dim_agent")).toMatchObject({
      phase: "blocked",
      lastError: 'DimAgent row agent_id="aloware:77", column agent_name: a String value may hold 4000 characters, this one holds 4001'
    })
    expect(status.find((row) => row.table === "fact_event")?.backlog).toBe(1)
    expect((await rowsInEmulator("FactEvent")).some((row) => row.agent_id === "aloware:77")).toBe(false)
  })
})

describe("an opted-in retail dataset for a streaming dashboard", () => {
  it("mirrors the sales and stock counts with their dimensions, and appends new sales without reloading", async () => {
    await appendAsEdge(stack.js, "pos", retailWorkload(300))
    await stack.projectToHead(sql, projections.retail as Projection)
    const sink = powerBiSink(powerbi.client(), LOCAL_WORKSPACE, retailPushDataset)
    const report = await sink.provision(false)
    expect(report).toMatchObject({ dataset: "Mesh Retail v2", created: true, drift: [] })
    await recordDataset(sql, retailPushDataset, LOCAL_WORKSPACE, report.datasetId)
    const retailPusher = () => pusher({ sql, sink, spec: retailPushDataset, clock: powerbi.clock, sleep: powerbi.sleep })
    await retailPusher().round()
    const expectRetailMirror = async () => {
      const tables = await mirrorOf(sql, powerbi.emulator, retailPushDataset, report.datasetId)
      for (const { table, mart, pushed } of tables) expect({ table, rows: pushed }).toEqual({ table, rows: mart })
      return Object.fromEntries(tables.map(({ table, pushed }) => [table, pushed.length]))
    }
    expect(await expectRetailMirror()).toMatchObject({ DimStore: 20, DimProduct: 48, FactSales: 258, FactInventory: 30 })

    await appendAsEdge(stack.js, "pos", retailWorkload(320).slice(300))
    await stack.projectToHead(sql, projections.retail as Projection)
    expect(await retailPusher().round()).toBe(19)
    expect((await expectRetailMirror()).FactSales).toBe(275)
    const status = (await pushStatus(sql)).filter((row) => row.dataset === "Mesh Retail v2")
    expect(status.map((row) => [row.table, row.reloads])).toEqual([
      ["dim_date", 1],
      ["dim_product", 1],
      ["dim_store", 1],
      ["fact_inventory", 1],
      ["fact_sales", 1]
    ])
  })
})
