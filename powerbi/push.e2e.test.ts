import type { NatsConnection } from "@nats-io/nats-core"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { streamFor } from "../contracts/log.ts"
import { projectUntil } from "../infra/local/log-stack.ts"
import { LOCAL_WORKSPACE, type LocalPowerBi, mirrorOf, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { connectProjector } from "../infra/local/projector.ts"
import { alowareCall, hubspotBatch, postSigned } from "../infra/local/samples.ts"
import { type EdgeStack, startEdgeStack } from "../infra/local/stack.ts"
import { freePort } from "../infra/ports.ts"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { runPushers } from "./cli.ts"
import { crmPushDataset } from "./datasets.ts"
import { datasetName } from "./dataset.ts"

/**
 * The whole path as a sender and an analyst see it: signed webhooks into the edge Worker (workerd),
 * the log, the crm projection, and `mesh powerbi push` (the same function) into the emulated push
 * dataset, over real HTTP with msal-node unmodified; its metrics read as Prometheus scrapes them.
 */

let stack: EdgeStack
let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql
let projector: NatsConnection
let powerbi: LocalPowerBi
let metricsUrl: string
const stop = new AbortController()
let pushing: Promise<void> | undefined
let pushedId: string | undefined
/** Facts seen in Power BI, right after one of their POSTs, without a row of a dimension they reference. */
const orphans: Array<string> = []
let factPosts = 0
/** Waiters for the pusher to catch up with what is in the marts now. */
const waiters: Array<{ rounds: number; resolve: () => void }> = []

/**
 * Resolves at the end of a round that pushed nothing and began after the call: the round in flight
 * at the call may have read the marts before the last commit, so one more round must end first.
 */
const caughtUp = () => new Promise<void>((resolve) => waiters.push({ rounds: 0, resolve }))

const onRound = (pushed: number) => {
  for (const waiter of [...waiters]) {
    waiter.rounds++
    if (pushed === 0 && waiter.rounds >= 2) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
  }
}

/** Right after each POST of facts: every fact row in Power BI finds its date, agent, metric and shift there. */
const checkFactsHaveDimensions = () => {
  if (pushedId === undefined) return
  factPosts++
  const rows = (table: string) => powerbi.emulator.tableRows(LOCAL_WORKSPACE, pushedId as string, table) ?? []
  const keys = (table: string, column: string) => new Set(rows(table).map((row) => row[column]))
  const [dates, agents, metrics, shifts] = [
    keys("DimDate", "date_key"),
    keys("DimAgent", "agent_id"),
    keys("DimMetric", "metric_id"),
    keys("DimShift", "shift_id")
  ]
  for (const fact of rows("FactEvent"))
    if (!dates.has(fact.date_key) || !agents.has(fact.agent_id) || !metrics.has(fact.metric_id) || !shifts.has(fact.shift_id))
      orphans.push(String(fact.event_id))
}

const projectCrmToHead = async () =>
  projectUntil(sql, projector, crmProjection, (await stack.jsm.streams.info(streamFor("crm"))).state.last_seq)

const datasetId = async (): Promise<string> =>
  (await sql`SELECT dataset_id FROM ingest.powerbi_datasets WHERE name = ${datasetName(crmPushDataset)}`)[0]?.dataset_id as string

/** Each pushed table holds exactly the active generation's mart rows: every column, every row, none twice. */
const expectMirror = async () => {
  const tables = await mirrorOf(sql, powerbi.emulator, crmPushDataset, await datasetId())
  for (const { table, mart, pushed } of tables) expect({ table, rows: pushed }).toEqual({ table, rows: mart })
  return Object.fromEntries(tables.map(({ table, pushed }) => [table, pushed.length]))
}

/** The value of `metric` for `table` in a Prometheus text scrape. */
const gauge = (scrape: string, metric: string, table: string): number | undefined => {
  const line = scrape.split("\n").find((candidate) => candidate.startsWith(`${metric}{`) && candidate.includes(`table="${table}"`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
}

beforeAll(async () => {
  stack = await startEdgeStack()
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { onnotice: () => {}, max: 4 })
  projector = await connectProjector(stack.nats)
  // An emulated hour passes in a second: the governor's pacing takes milliseconds.
  powerbi = await startLocalPowerBi({ speed: 3600 })
  const port = await freePort()
  metricsUrl = `http://127.0.0.1:${port}/metrics`
  // The first rounds provision the dataset and load the seeded dimensions.
  const provisioned = caughtUp()
  pushing = runPushers({
    source: { env: { ...powerbi.env, POWERBI_METRICS_PORT: String(port), POWERBI_POLL_MS: "20" } },
    sql,
    signal: stop.signal,
    onStep: (step, table) => step === "after-post" && table === "fact_event" && checkFactsHaveDimensions(),
    onRound
  })
  await Promise.race([provisioned, pushing])
  pushedId = await datasetId()
})

afterAll(async () => {
  stop.abort()
  await pushing
  await projector?.close()
  await sql?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
  await powerbi?.close()
  await stack?.dispose()
})

describe("signed webhooks through the edge into the Power BI push dataset", () => {
  it("leave the emulated tables equal to the crm marts, every column and row, dimensions before the facts", async () => {
    const hubspot = await postSigned(stack.edge.url, "hubspot", hubspotBatch(30, { firstEventId: 1 }), stack.secrets.hubspot as string)
    expect(hubspot.status).toBe(202)
    for (const [id, at] of [
      [1, "2025-01-15 10:32:00"],
      [2, "2025-01-16 22:30:00"]
    ] as const)
      expect((await postSigned(stack.edge.url, "aloware", alowareCall(id, at), stack.secrets.aloware as string)).status).toBe(202)
    await projectCrmToHead()
    const facts = (await sql`SELECT count(*)::int AS n FROM mart_crm.fact_event`)[0]?.n as number
    expect(facts).toBeGreaterThan(20)

    await caughtUp()
    const counts = await expectMirror()
    expect(counts.FactEvent).toBe(facts)
    expect(factPosts).toBeGreaterThan(0)
    expect(orphans).toEqual([])
  })

  it("append what later webhooks add, and report it on the metrics endpoint as mesh powerbi status does", async () => {
    const newAgent = alowareCall(70, "2025-03-01 23:10:00")
    const response = await postSigned(
      stack.edge.url,
      "aloware",
      { ...newAgent, data: { ...newAgent.data, user_id: 98, user_name: "Rae New" } },
      stack.secrets.aloware as string
    )
    expect(response.status).toBe(202)
    await projectCrmToHead()
    await caughtUp()
    expect(orphans).toEqual([])
    const counts = await expectMirror()

    const scrape = await (await fetch(metricsUrl)).text()
    expect(scrape).toContain("ingest_powerbi_up 1")
    for (const [table, pushedAs] of [
      ["fact_event", "FactEvent"],
      ["dim_agent", "DimAgent"]
    ] as const) {
      expect(gauge(scrape, "ingest_powerbi_rows", table)).toBe(counts[pushedAs])
      expect(gauge(scrape, "ingest_powerbi_backlog_rows", table)).toBe(0)
      expect(gauge(scrape, "ingest_powerbi_throttled_total", table)).toBe(0)
      expect(gauge(scrape, "ingest_powerbi_blocked", table)).toBe(0)
    }
    expect(gauge(scrape, "ingest_powerbi_posts_total", "fact_event")).toBeGreaterThanOrEqual(2)
    expect(powerbi.emulator.tableRows(LOCAL_WORKSPACE, await datasetId(), "DimAgent")?.some((row) => row.agent_name === "Rae New")).toBe(
      true
    )
  })
})
