import type postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { activeGeneration } from "../consumers/registry.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { LOCAL_WORKSPACE, type LocalPowerBi, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { alowareCall, hubspotBatch } from "../infra/local/samples.ts"
import { qualified } from "../platform/sql.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { martTableOf, PUSH_SEQ, pushRow } from "./dataset.ts"
import { crmPushDataset } from "./datasets.ts"
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
  (
    (await (
      await fetch(`${powerbi.emulator.url}/_emulator/groups/${LOCAL_WORKSPACE}/datasets/${datasetId}/tables/${table}/rows`)
    ).json()) as {
      rows: Array<Record<string, unknown>>
    }
  ).rows

const withoutSeq = (row: Record<string, unknown>) => {
  const { [PUSH_SEQ]: _seq, ...rest } = row
  return JSON.stringify(rest)
}

/** Every pushed table of the dataset holds exactly the active generation's mart rows: every column, every row, none twice. */
const expectMirror = async () => {
  const active = await activeGeneration(sql, "crm")
  for (const table of crmPushDataset.tables) {
    const mart = martTableOf(crmPushDataset, table)
    const rows = await sql.unsafe(`SELECT to_jsonb(t) AS row FROM ${qualified(active?.schema as string, mart.name)} t`)
    const expected = rows.map((row) => withoutSeq(pushRow(mart, row.row as Record<string, unknown>, 0))).sort()
    const found = (await rowsInEmulator(table.as)).map(withoutSeq).sort()
    expect({ table: table.as, rows: found }).toEqual({ table: table.as, rows: expected })
  }
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
})
