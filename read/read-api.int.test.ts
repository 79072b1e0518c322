import { parse as parseCsv } from "csv-parse/sync"
import postgres from "postgres"
import { readSheet } from "read-excel-file/node"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { addSnapshots } from "../infra/local/oee-mart.ts"
import { type ReadApiHarness, startReadApi } from "../infra/local/read-api.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { erasureEvents, hubspotBatch, retailEvents } from "../infra/local/samples.ts"
import { rebuildProjection } from "../consumers/rebuild.ts"
import { publishedSchema } from "../projections/catalogue.ts"
import { projections } from "../projections/index.ts"
import { oeeProjection } from "../projections/oee/projection.ts"
import { exportEndpoints } from "./exports.ts"
import { marts } from "./feeds.ts"
import { createApiKey, revokeApiKey } from "./keys.ts"
import { ALL_ROWS } from "./row-scope.ts"
import { serveReadApi } from "./server.ts"

let stack: LogStack
let owner: postgres.Sql
let readerSql: postgres.Sql
let api: ReadApiHarness
const keys: Record<"all" | "warehouse" | "revoked", string> = { all: "", warehouse: "", revoked: "" }

const at = (iso: string) => new Date(iso).toISOString()
const envelope = (id: string, type: string, timestamp: string, data: object) => ({ id, type, timestamp, data })

/** The known webhooks: two days of warehouse events, two machines' snapshots, stops and shift reports. */
const warehouseEvents = [
  ...erasureEvents(8, { firstId: 1, day: "2025-01-15" }),
  ...erasureEvents(4, { firstId: 100, day: "2025-01-16" }),
  envelope("intake_1", "intake.booked_in", "2025-01-15T07:00:00Z", { count: 5 }),
  envelope("qa_1", "qa.completed", "2025-01-15T18:00:00Z", { count: 3 })
]
const snapshotTimes = [
  "2025-01-15T06:15:00Z",
  "2025-01-15T06:30:00Z",
  "2025-01-15T06:45:00Z",
  "2025-01-15T07:00:00Z",
  "2025-01-16T00:00:00Z"
]
const snapshots = ["M-01", "M-02"].flatMap((machine, m) =>
  snapshotTimes.map((time, k) => ({
    machine_id: machine,
    line_id: "L-1",
    shift_id: k < 4 ? "S-1" : "S-3",
    snapshot_time: time,
    oee_pct: 70 + k + m / 4,
    availability_pct: 90.5,
    performance_pct: 88,
    quality_pct: 97.25,
    total_pieces: 120 + k,
    good_pieces: 116,
    rejected_pieces: 4 + k,
    planned_production_time: 15,
    actual_production_time: 13.5
  }))
)
const downtimes = [
  {
    downtime_id: "D1",
    machine_id: "M-01",
    line_id: "L-1",
    start_time: "2025-01-15T06:20:00Z",
    end_time: "2025-01-15T06:27:00Z",
    duration_minutes: 7,
    is_planned: false,
    reason: "jam",
    resolved: true
  },
  {
    downtime_id: "D2",
    machine_id: "M-02",
    line_id: "L-1",
    start_time: "2025-01-15T06:50:00Z",
    end_time: null,
    duration_minutes: 12.5,
    is_planned: true,
    reason: "changeover"
  }
]
const reports = [
  {
    report_id: "R1",
    shift_id: "S-1",
    line_id: "L-1",
    report_date: "2025-01-15",
    status: "submitted",
    oee_pct: 71.5,
    total_pieces: 486,
    good_pieces: 464,
    rejected_pieces: 22,
    downtime_minutes: 19.5,
    notes: 'belt, "B"; fixed'
  },
  { report_id: "R2", shift_id: "S-3", line_id: "L-1", report_date: "2025-01-16", status: "approved" }
]
const oeeEvents = [
  envelope("line", "line.upserted", "2025-01-15T00:00:00Z", { id: "L-1", name: "Pressing" }),
  envelope("m1", "machine.upserted", "2025-01-15T00:00:00Z", { id: "M-01", name: "Press 1", code: "P1", line_id: "L-1" }),
  envelope("m2", "machine.upserted", "2025-01-15T00:00:00Z", { id: "M-02", name: "Press 2", code: "P2", line_id: "L-1" }),
  envelope("s1", "shift.upserted", "2025-01-15T00:00:00Z", { id: "S-1", name: "Early", start_time: "06:00", end_time: "14:00" }),
  ...snapshots.map((s, i) => envelope(`snap_${i}`, "snapshot.recorded", s.snapshot_time, s)),
  ...downtimes.map((d) => envelope(`down_${d.downtime_id}`, "downtime.recorded", d.start_time, d)),
  ...reports.map((r) => envelope(`report_${r.report_id}`, "shift_report.submitted", `${r.report_date}T20:00:00Z`, r))
]

/** `key` null: no key at all. */
const get = (path: string, key: string | null = keys.all) =>
  fetch(`${api.url}${path}`, { headers: key === null ? {} : { "X-API-Key": key } })

/** Excel keeps instants as fractions of a day: they read back within a millisecond. */
const toMillisecond = (value: unknown) => (value instanceof Date ? Math.round(value.getTime() / 10) * 10 : value)
const json = async (path: string) => {
  const response = await get(path)
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as Array<Record<string, unknown>>
}
const csv = async (path: string) => {
  const response = await get(path)
  expect(response.status).toBe(200)
  return { response, text: await response.text() }
}
const xlsx = async (path: string) => {
  const response = await get(path)
  expect(response.status).toBe(200)
  return { response, sheet: await readSheet(Buffer.from(await response.arrayBuffer())) }
}

beforeAll(async () => {
  stack = await startLogStack()
  const database = await stack.database()
  owner = database.sql
  await appendAsEdge(stack.js, "erasure", warehouseEvents)
  await appendAsEdge(stack.js, "oee", oeeEvents)
  await appendAsEdge(stack.js, "hubspot", hubspotBatch(6, { firstEventId: 500, occurredAt: Date.parse("2025-01-15T09:00:00Z") }))
  await appendAsEdge(stack.js, "pos", retailEvents("47", Date.parse("2025-01-15T12:00:00Z")))
  for (const projection of Object.values(projections)) await stack.projectToHead(owner, projection)
  keys.all = (await createApiKey(owner, "all marts", ["*"], marts, ALL_ROWS)).key
  keys.warehouse = (await createApiKey(owner, "warehouse only", ["warehouse"], marts)).key
  keys.revoked = (await createApiKey(owner, "revoked", ["*"], marts, ALL_ROWS)).key
  await revokeApiKey(owner, keys.revoked)
  api = await startReadApi(owner, database.url, { maxStreams: 2, accessLog: false })
  readerSql = api.sql
}, 120_000)

afterAll(async () => {
  await api?.close()
  await stack?.dispose()
})

const expectedErasures = warehouseEvents
  .filter((event) => event.type.startsWith("erasure."))
  .map((event) => {
    const data = event.data as { device_type: string; initials: string; duration_seconds: number; job_id: string; error_type?: string }
    return {
      timestamp: at(event.timestamp),
      date: event.timestamp.slice(0, 10),
      month: event.timestamp.slice(0, 7),
      event: event.type.slice("erasure.".length),
      device_type: data.device_type,
      initials: data.initials,
      duration_seconds: data.duration_seconds,
      error_type: data.error_type ?? null,
      job_id: data.job_id
    }
  })
  .sort((a, b) => a.timestamp.localeCompare(b.timestamp))

const machineNames: Record<string, string> = { "M-01": "Press 1", "M-02": "Press 2" }
const expectedSnapshots = snapshots
  .map((s) => ({
    snapshot_time: at(s.snapshot_time),
    machine_id: s.machine_id,
    machine_name: machineNames[s.machine_id],
    oee_pct: s.oee_pct,
    availability_pct: s.availability_pct,
    performance_pct: s.performance_pct,
    quality_pct: s.quality_pct,
    shift_id: s.shift_id
  }))
  .sort((a, b) => a.snapshot_time.localeCompare(b.snapshot_time) || a.machine_id.localeCompare(b.machine_id))

describe("the seeds' REST endpoints", () => {
  it("daily-stats, erasure-events and engineer-stats return exactly what the webhooks said, within start_date..end_date", async () => {
    expect(await json("/api/powerbi/daily-stats?start_date=2025-01-15&end_date=2025-01-16")).toEqual([
      { date: "2025-01-15", booked_in: 5, erased: 4, qa: 3 },
      { date: "2025-01-16", booked_in: 0, erased: 2, qa: 0 }
    ])
    expect(await json("/api/powerbi/daily-stats?start_date=2025-01-16&end_date=2025-01-16")).toEqual([
      { date: "2025-01-16", booked_in: 0, erased: 2, qa: 0 }
    ])
    expect(await json("/api/powerbi/erasure-events?start_date=2025-01-01&end_date=2025-01-31")).toEqual(expectedErasures)
    expect(await json("/api/powerbi/erasure-events?start_date=2025-01-16")).toEqual(
      expectedErasures.filter((row) => row.date === "2025-01-16")
    )
    const successes = expectedErasures.filter((row) => row.event === "success" && row.date === "2025-01-15")
    const perEngineer = [...new Set(successes.map((row) => row.initials))]
      .sort()
      .map((initials) => ({ date: "2025-01-15", initials, count: successes.filter((row) => row.initials === initials).length }))
    expect(await json("/api/powerbi/engineer-stats?start_date=2025-01-15&end_date=2025-01-15")).toEqual(perEngineer)
  })

  it("erasure-events as CSV parses back to the same rows, and as XLSX reads back with the same rows and types", async () => {
    const { text } = await csv("/api/powerbi/erasure-events?format=csv")
    const parsed = parseCsv(text, { columns: true }) as Array<Record<string, string>>
    expect(parsed).toEqual(
      expectedErasures.map((row) =>
        Object.fromEntries(Object.entries(row).map(([name, value]) => [name, value === null ? "" : String(value)]))
      )
    )
    const { sheet } = await xlsx("/api/powerbi/erasure-events?format=xlsx")
    expect(sheet[0]).toEqual(Object.keys(expectedErasures[0] as object))
    expect(sheet.slice(1).map((cells) => cells.map(toMillisecond))).toEqual(
      expectedErasures.map((row) => [
        Date.parse(row.timestamp),
        Date.parse(row.date),
        row.month,
        row.event,
        row.device_type,
        row.initials,
        row.duration_seconds,
        row.error_type,
        row.job_id
      ])
    )
  })

  it("/metrics/today and /metrics/yesterday summarise the current UTC days", async () => {
    const today = new Date().toISOString().slice(0, 10)
    expect(await json("/metrics/today")).toEqual({ date: today, booked_in: 0, erased: 0, qa: 0, engineers: [], device_types: [] })
    const yesterday = (await json("/metrics/yesterday")) as unknown as { date: string }
    expect(yesterday.date).toBe(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10))
  })

  it("OEE snapshots as CSV have the seed's columns, file name and rows, and filter by machine, shift and window", async () => {
    const { response, text } = await csv("/api/oee/export/snapshots?format=csv&date_from=2025-01-15&date_to=2025-01-16")
    expect(response.headers.get("content-disposition")).toBe(
      `attachment; filename="OEE_Snapshots_${new Date().toISOString().slice(0, 10)}.csv"`
    )
    expect(text.split("\r\n")[0]).toBe(
      "snapshot_time,machine_id,machine_name,oee_pct,availability_pct,performance_pct,quality_pct,shift_id"
    )
    const parsed = parseCsv(text, {
      columns: true,
      cast: (value, context) =>
        context.header || ["snapshot_time", "machine_id", "machine_name", "shift_id"].includes(String(context.column))
          ? value
          : Number(value)
    })
    expect(parsed).toEqual(expectedSnapshots)
    const m2 = await csv("/api/oee/export/snapshots?format=csv&machine_id=M-02&shift_id=S-1&include_headers=false")
    expect(parseCsv(m2.text)).toHaveLength(4)
    expect(m2.text.startsWith("2025-01-15T06:15:00.000Z,M-02,Press 2,")).toBe(true)
    const window = await json("/api/oee/export/snapshots?date_from=2025-01-15T06:30:00Z&date_to=2025-01-15T07:00:00Z")
    expect(window.map((row) => [row.snapshot_time, row.machine_id])).toEqual([
      ["2025-01-15T06:30:00.000Z", "M-01"],
      ["2025-01-15T06:30:00.000Z", "M-02"],
      ["2025-01-15T06:45:00.000Z", "M-01"],
      ["2025-01-15T06:45:00.000Z", "M-02"]
    ])
    expect(await json("/api/oee/export/snapshots?limit=3")).toEqual(expectedSnapshots.slice(0, 3))
  })

  it("downtime, shift reports and the data mart export with their filters, and the data mart's XLSX keeps its column types", async () => {
    const stops = await json("/api/oee/export/downtime?date_from=2025-01-15&date_to=2025-01-15")
    expect(stops).toEqual([
      {
        downtime_id: "D1",
        machine_id: "M-01",
        machine_name: "Press 1",
        line_id: "L-1",
        start_time: "2025-01-15T06:20:00.000Z",
        end_time: "2025-01-15T06:27:00.000Z",
        duration_minutes: 7,
        is_planned: false,
        reason: "jam",
        category: null,
        resolved: true
      },
      {
        downtime_id: "D2",
        machine_id: "M-02",
        machine_name: "Press 2",
        line_id: "L-1",
        start_time: "2025-01-15T06:50:00.000Z",
        end_time: null,
        duration_minutes: 12.5,
        is_planned: true,
        reason: "changeover",
        category: null,
        resolved: null
      }
    ])
    expect((await json("/api/oee/export/downtime?include_resolved=false")).map((row) => row.downtime_id)).toEqual(["D2"])
    const submitted = await json("/api/oee/export/shift-reports?status=submitted")
    expect(submitted).toEqual([
      {
        report_id: "R1",
        report_date: "2025-01-15",
        shift_id: "S-1",
        shift_name: "Early",
        line_id: "L-1",
        machine_id: null,
        status: "submitted",
        oee_pct: 71.5,
        total_pieces: 486,
        good_pieces: 464,
        rejected_pieces: 22,
        downtime_minutes: 19.5,
        notes: 'belt, "B"; fixed'
      }
    ])
    const reportsCsv = parseCsv((await csv("/api/oee/export/shift-reports?format=csv")).text, { columns: true }) as Array<
      Record<string, string>
    >
    expect(reportsCsv.map((row) => [row.report_id, row.notes, row.oee_pct])).toEqual([
      ["R1", 'belt, "B"; fixed', "71.5"],
      ["R2", "", ""]
    ])

    const mart = await json("/api/oee/export/data-mart?date_from=2025-01-15&date_to=2025-01-15")
    expect(mart).toHaveLength(8)
    const at0630 = mart.find((row) => row.machine_id === "M-01" && row.snapshot_time === "2025-01-15T06:30:00.000Z")
    expect(at0630).toMatchObject({
      machine_name: "Press 1",
      line_name: "Pressing",
      shift_name: "Early",
      oee_pct: 71,
      downtime_minutes: 7,
      unplanned_downtime_minutes: 7,
      planned_downtime_minutes: 0
    })
    const { response, sheet } = await xlsx("/api/oee/export/data-mart?format=xlsx&date_from=2025-01-15&date_to=2025-01-15")
    expect(response.headers.get("content-type")).toBe("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    const header = sheet[0] as Array<string>
    expect(header).toEqual(Object.keys(mart[0] as object))
    const rows = sheet.slice(1).map((cells) => Object.fromEntries(header.map((name, i) => [name, cells[i]])))
    expect(rows).toHaveLength(8)
    for (const [i, row] of rows.entries()) {
      const expected = mart[i] as Record<string, unknown>
      expect(row.snapshot_time).toBeInstanceOf(Date)
      expect(toMillisecond(row.snapshot_time)).toBe(Date.parse(expected.snapshot_time as string))
      expect(row.oee_pct).toBe(expected.oee_pct)
      expect(row.total_pieces).toBe(expected.total_pieces)
      expect(row.downtime_minutes).toBe(expected.downtime_minutes)
      expect(row.machine_name).toBe(expected.machine_name)
      expect(row.work_order_id).toBeNull()
    }
  })

  it("every crm and retail mart object exports every row, the same in JSON as in the database", async () => {
    for (const mart of ["crm", "retail"]) {
      for (const name of (projections[mart]?.published ?? []).filter((name) => !name.startsWith("dim_date"))) {
        const rows = await json(`/api/${mart}/export/${name.replaceAll("_", "-")}`)
        const [{ count }] = (await owner.unsafe(`SELECT count(*)::int AS count FROM mart_${mart}."${name}"`)) as unknown as [
          { count: number }
        ]
        expect(rows, `${mart}.${name}`).toHaveLength(count)
      }
    }
    const sales = await json("/api/retail/export/fact-sales?date_from=2025-01-15&date_to=2025-01-15")
    expect(sales).toEqual([expect.objectContaining({ quantity: 2, revenue: 9, sold_at: "2025-01-15T12:00:00.000Z" })])
    const calls = await json("/api/crm/export/fact-event?format=json")
    expect(calls.length).toBeGreaterThan(0)
    const dailyMetric = await json("/api/crm/export/fact-daily-metric")
    expect(dailyMetric.reduce((sum, row) => sum + (row.event_count as number), 0)).toBe(calls.length)
  })
})

/** A CSV field or an XLSX cell as the JSON export writes the same value, by the column's declared type. */
const fromCsv = (type: string, text: string): unknown =>
  text === "" ? null : ["integer", "bigint", "numeric"].includes(type) ? Number(text) : type === "boolean" ? text === "true" : text
const fromXlsx = (type: string, cell: unknown): unknown =>
  cell === null || cell === undefined
    ? null
    : type === "date"
      ? (cell as Date).toISOString().slice(0, 10)
      : type === "timestamptz"
        ? new Date(toMillisecond(cell) as number).toISOString()
        : cell

describe("every seed endpoint in every format", () => {
  const seedPaths = ["daily-stats", "erasure-events", "engineer-stats"]
    .map((name) => `/api/powerbi/${name}`)
    .concat(["snapshots", "downtime", "shift-reports", "data-mart"].map((name) => `/api/oee/export/${name}`))
  const seedEndpoints = exportEndpoints.filter((endpoint) => seedPaths.includes(endpoint.path))

  it("are declared once each, and no other export takes their paths", () => {
    expect(seedEndpoints.map((endpoint) => endpoint.path).sort()).toEqual([...seedPaths].sort())
    expect(new Set(exportEndpoints.map((endpoint) => endpoint.path)).size).toBe(exportEndpoints.length)
  })

  it.each(seedEndpoints.map((endpoint) => [endpoint.path]))(
    "%s: the CSV parses back and the XLSX reads back to the JSON rows",
    async (path) => {
      const endpoint = seedEndpoints.find((candidate) => candidate.path === path)
      const types = (endpoint?.columns ?? []).map(({ column }) => [column.name, column.type] as const)
      const rows = await json(path)
      expect(rows.length).toBeGreaterThan(0)
      const parsed = parseCsv((await csv(`${path}?format=csv`)).text, { columns: true }) as Array<Record<string, string>>
      expect(parsed.map((row) => Object.fromEntries(types.map(([name, type]) => [name, fromCsv(type, row[name] as string)])))).toEqual(rows)
      const { sheet } = await xlsx(`${path}?format=xlsx`)
      expect(sheet[0]).toEqual(types.map(([name]) => name))
      expect(sheet.slice(1).map((cells) => Object.fromEntries(types.map(([name, type], i) => [name, fromXlsx(type, cells[i])])))).toEqual(
        rows
      )
    }
  )
})

describe("API keys", () => {
  it("without a key: 401 naming where to put one; a revoked key: 401; an unknown key: 401", async () => {
    const none = await get("/api/powerbi/daily-stats", null)
    expect(none.status).toBe(401)
    expect(((await none.json()) as { message: string }).message).toMatch(
      /X-API-Key header, as Authorization: Bearer <key>, or in the api_key query parameter/
    )
    const revoked = await get("/api/powerbi/daily-stats", keys.revoked)
    expect(revoked.status).toBe(401)
    expect(((await revoked.json()) as { message: string }).message).toMatch(/revoked/)
    const forged = `${keys.all.slice(0, -4)}AAAA`
    expect((await get("/api/powerbi/daily-stats", forged)).status).toBe(401)
    expect((await get("/odata/oee/oee_snapshots", null)).status).toBe(401)
  })

  it("a key scoped to another mart: 403 naming the marts it may read", async () => {
    const response = await get("/api/oee/export/snapshots", keys.warehouse)
    expect(response.status).toBe(403)
    expect(((await response.json()) as { message: string }).message).toMatch(/may read the warehouse mart\(s\), not oee/)
    expect((await get("/odata/oee/", keys.warehouse)).status).toBe(403)
    expect((await get("/api/powerbi/daily-stats", keys.warehouse)).status).toBe(200)
  })

  it("is accepted as the api_key query parameter, as Power BI's Web API credential sends it", async () => {
    const response = await fetch(
      `${api.url}/api/powerbi/daily-stats?start_date=2025-01-15&end_date=2025-01-15&api_key=${encodeURIComponent(keys.all)}`
    )
    expect(response.status).toBe(200)
  })

  it("are never written to the access log, which names the key by its id", async () => {
    const logged = vi.spyOn(console, "log").mockImplementation(() => {})
    const logging = await serveReadApi({ sql: readerSql, port: 0, maxStreams: 1 })
    let lines: Array<string> = []
    try {
      expect(
        (await fetch(`${logging.url}/api/powerbi/daily-stats?start_date=2025-01-15&api_key=${encodeURIComponent(keys.all)}`)).status
      ).toBe(200)
      lines = logged.mock.calls.map(([line]) => String(line)).filter((line) => line.includes('"msg":"read"'))
    } finally {
      await logging.close()
      logged.mockRestore()
    }
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      method: "GET",
      path: "/api/powerbi/daily-stats",
      status: 200,
      key: keys.all.slice(4, 20)
    })
    expect(lines[0]).not.toContain(keys.all.slice(21))
  })

  it("the API's database role can read the marts but write nothing", async () => {
    expect((await readerSql`SELECT count(*)::int AS n FROM mart_oee.oee_snapshots`)[0]?.n).toBe(10)
    await expect(
      readerSql`INSERT INTO ingest.api_keys (id, name, secret_sha256, marts) VALUES ('x', 'x', '\\x00', '{*}')`
    ).rejects.toThrow()
    await expect(readerSql.unsafe(`DELETE FROM mart_oee.oee_snapshots`)).rejects.toThrow()
    await expect(readerSql.begin("read write", (tx) => tx`UPDATE ingest.api_keys SET revoked_at = NULL`)).rejects.toThrow()
  })
})

/** Malformed parameters: each must come back 400 naming the parameter. */
const BAD_REQUESTS: ReadonlyArray<[string, string]> = [
  ["/api/oee/export/snapshots?date_from=2025-13-01", "date_from"],
  ["/api/oee/export/snapshots?date_from=2025-02-30", "date_from"],
  ["/api/oee/export/snapshots?date_from=15/01/2025", "date_from"],
  ["/api/oee/export/snapshots?date_to=yesterday", "date_to"],
  ["/api/oee/export/snapshots?date_from=2025-01-15&date_to=2025-01-14", "date_to"],
  ["/api/oee/export/snapshots?date_from=2025-01-15T25:00:00Z", "date_from"],
  ["/api/oee/export/snapshots?format=pdf", "format"],
  ["/api/oee/export/snapshots?limit=100001", "limit"],
  ["/api/oee/export/snapshots?limit=0", "limit"],
  ["/api/oee/export/snapshots?limit=ten", "limit"],
  ["/api/oee/export/snapshots?include_headers=maybe", "include_headers"],
  ["/api/oee/export/snapshots?machine=M-01", "machine"],
  ["/api/oee/export/snapshots?machine_id=M-01&machine_id=M-02", "machine_id"],
  ["/api/oee/export/downtime?include_resolved=perhaps", "include_resolved"],
  ["/api/powerbi/daily-stats?start_date=2025-1-5", "start_date"],
  ["/api/powerbi/daily-stats?start_date=2025-01-10&end_date=2025-01-01", "end_date"],
  ["/odata/oee/oee_snapshots?$select=machine_id,nope", "$select"],
  ["/odata/oee/oee_snapshots?$filter=nope eq 1", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=snapshot_time ge 'soon'", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=snapshot_time ge 2025-02-30T00:00:00Z", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=total_pieces eq 1.5", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=machine_id eq 'M-01' and", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=machine_id eq 'M-01", "$filter"],
  ["/odata/oee/oee_snapshots?$filter=length(machine_id) eq 4", "$filter"],
  ["/odata/oee/oee_snapshots?$top=-1", "$top"],
  ["/odata/oee/oee_snapshots?$skip=x", "$skip"],
  ["/odata/oee/oee_snapshots?$orderby=machine_id sideways", "$orderby"],
  ["/odata/oee/oee_snapshots?$skiptoken=bm90LWEtdG9rZW4", "$skiptoken"],
  ["/odata/oee/oee_snapshots?$expand=machines", "$expand"],
  ["/odata/oee/oee_snapshots?$count=yes", "$count"],
  ["/odata/oee/oee_snapshots?$filter=total_pieces eq 99999999999", "$filter"],
  ["/api/oee/export/snapshots?date_to=9999-12-31", "date_to"],
  ["/api/oee/export/snapshots?date_from=2025-01-15T00:00:00Z&date_to=2025-01-14", "date_to"]
]

describe("malformed requests", () => {
  it.each(BAD_REQUESTS)("%s is a 400 naming %s", async (path, parameter) => {
    const response = await get(path.replaceAll(" ", "%20"))
    expect(response.status).toBe(400)
    const body = (await response.json()) as { parameter?: string; message?: string; error?: { target?: string; message?: string } }
    const named = body.parameter ?? body.error?.target
    const message = body.message ?? body.error?.message ?? ""
    expect(named).toBe(parameter)
    expect(message.startsWith(`${parameter}: `)).toBe(true)
  })

  it("an injection attempt in $filter is bound as a value or rejected, and the database is unchanged", async () => {
    const before =
      await owner`SELECT (SELECT count(*) FROM mart_oee.oee_snapshots)::int AS snapshots, (SELECT count(*) FROM ingest.api_keys)::int AS keys`
    const bound = await get(
      `/odata/oee/oee_snapshots?$filter=${encodeURIComponent("machine_id eq 'M-01''; DROP TABLE ingest.api_keys; --'")}`
    )
    expect(bound.status).toBe(200)
    expect(((await bound.json()) as { value: Array<unknown> }).value).toEqual([])
    const rejected = await get(
      `/odata/oee/oee_snapshots?$filter=${encodeURIComponent("machine_id eq 'M-01' or 1 eq 1; DELETE FROM mart_oee.oee_snapshots")}`
    )
    expect(rejected.status).toBe(400)
    const exported = await get(`/api/oee/export/snapshots?machine_id=${encodeURIComponent("M-01' OR '1'='1")}`)
    expect(await exported.json()).toEqual([])
    expect(
      await owner`SELECT (SELECT count(*) FROM mart_oee.oee_snapshots)::int AS snapshots, (SELECT count(*) FROM ingest.api_keys)::int AS keys`
    ).toEqual(before)
  })
})

describe("OData and the documents", () => {
  it("serves a service document, $metadata naming every mart object with its key, and typed rows", async () => {
    const service = (await json("/odata/oee/")) as unknown as { value: Array<{ name: string }> }
    expect(service.value.map((set) => set.name)).toEqual(projections.oee?.published)
    const metadata = await (await get("/odata/oee/$metadata")).text()
    expect(metadata).toContain('<EntityType Name="oee_data_mart"><Key><PropertyRef Name="snapshot_id"/></Key>')
    expect(metadata).toContain('<Property Name="snapshot_time" Type="Edm.DateTimeOffset" Nullable="false" Precision="3"/>')
    const page = (await json(
      "/odata/oee/oee_snapshots?$select=machine_id,oee_pct&$filter=machine_id eq 'M-02' and snapshot_time lt 2025-01-16&$orderby=oee_pct desc&$count=true"
    )) as unknown as {
      "@odata.count": number
      value: Array<unknown>
    }
    expect(page["@odata.count"]).toBe(4)
    expect(page.value).toEqual([3.25, 2.25, 1.25, 0.25].map((k) => ({ machine_id: "M-02", oee_pct: 70 + k })))
    expect(await (await get("/odata/oee/oee_snapshots/$count?$filter=contains(machine_id,'01')")).text()).toBe("5")
  })

  it("keeps rows whose property is null under ne and not, as OData and Power Query do", async () => {
    const ids = async (filter: string) =>
      (
        (await json(`/odata/oee/shift_reports?$select=id&$filter=${encodeURIComponent(filter)}`)) as unknown as {
          value: Array<{ id: string }>
        }
      ).value.map((row) => row.id)
    expect(await ids("machine_id ne 'M-01'")).toEqual(["R1", "R2"])
    expect(await ids("not (oee_pct gt 80)")).toEqual(["R1", "R2"])
    expect(await ids("oee_pct le 80")).toEqual(["R1"])
    expect(await ids("notes eq null")).toEqual(["R2"])
  })

  it("pages an $orderby on a column with nulls, nulls last ascending and first descending", async () => {
    const walk = async (order: string) => {
      const ids: Array<string> = []
      for (
        let next: string | undefined = `${api.url}/odata/oee/shift_reports?$select=id&$orderby=${encodeURIComponent(order)}`;
        next !== undefined;
      ) {
        const response = await fetch(next, { headers: { "X-API-Key": keys.all, Prefer: "odata.maxpagesize=1" } })
        const page = (await response.json()) as { value: Array<{ id: string }>; "@odata.nextLink"?: string }
        ids.push(...page.value.map((row) => row.id))
        next = page["@odata.nextLink"]
      }
      return ids
    }
    expect(await walk("oee_pct")).toEqual(["R1", "R2"])
    expect(await walk("oee_pct desc")).toEqual(["R2", "R1"])
    expect(await walk("machine_id desc,id desc")).toEqual(["R2", "R1"])
  })

  it("takes an instant as date_from and a whole day as date_to in one window", async () => {
    const rows = await json("/api/oee/export/snapshots?date_from=2025-01-15T06:45:00Z&date_to=2025-01-15")
    expect(rows.map((row) => row.snapshot_time)).toEqual([
      "2025-01-15T06:45:00.000Z",
      "2025-01-15T06:45:00.000Z",
      "2025-01-15T07:00:00.000Z",
      "2025-01-15T07:00:00.000Z"
    ])
  })

  it("publishes an OpenAPI document listing every export with its parameters, and a docs page", async () => {
    const document = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
      paths: Record<string, { get: { parameters?: Array<{ name: string }> } }>
    }
    expect(document.paths["/api/oee/export/snapshots"]?.get.parameters?.map((p) => p.name)).toEqual([
      "format",
      "date_from",
      "date_to",
      "machine_id",
      "line_id",
      "shift_id",
      "include_headers",
      "csv_raw",
      "limit"
    ])
    for (const path of [
      "/api/powerbi/daily-stats",
      "/api/crm/export/fact-event",
      "/api/retail/export/fact-sales",
      "/metrics/today",
      "/odata/retail/{entitySet}"
    ])
      expect(document.paths[path], path).toBeDefined()
    const page = await fetch(`${api.url}/docs`)
    expect(page.headers.get("content-type")).toMatch(/text\/html/)
    expect(await page.text()).toContain("GET /api/oee/export/data-mart")
  })

  it("declares each view's columns as the database has them", async () => {
    for (const projection of Object.values(projections)) {
      for (const view of projection.views ?? []) {
        const actual =
          await owner`SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ${publishedSchema(projection)} AND table_name = ${view.name} ORDER BY ordinal_position`
        const pgType: Record<string, string> = {
          text: "text",
          integer: "integer",
          bigint: "bigint",
          numeric: "numeric",
          date: "date",
          timestamptz: "timestamp with time zone",
          boolean: "boolean"
        }
        expect(
          actual.map((row) => [row.column_name, row.data_type]),
          view.name
        ).toEqual(view.columns.map((column) => [column.name, pgType[column.type]]))
      }
    }
  })
})

/** Resolves once none of the API's sessions is in a query: every cursor it opened is closed. A leaked one never is. */
const cursorsClosed = () => api.cursorsClosed()

describe("streams and the database", () => {
  it("a client that goes away, or asks for HEAD, leaves no cursor open", async () => {
    for (let i = 0; i < 6; i++) {
      const stop = new AbortController()
      const response = await fetch(`${api.url}/api/oee/export/data-mart?format=${["csv", "json", "xlsx"][i % 3]}`, {
        headers: { "X-API-Key": keys.all },
        signal: stop.signal
      })
      expect(response.status).toBe(200)
      await response.body?.getReader().read()
      stop.abort()
      const head = await fetch(`${api.url}/odata/oee/oee_snapshots`, { method: "HEAD", headers: { "X-API-Key": keys.all } })
      expect(head.status).toBe(200)
      await cursorsClosed()
    }
    expect(await json("/api/powerbi/daily-stats?start_date=2025-01-16")).toHaveLength(1)
  })

  it("past maxStreams concurrent exports answers 503 with Retry-After instead of queueing in the pool, and ends a stream whose client stopped reading", async () => {
    const added = await addSnapshots(owner, { prefix: "busy-", from: "2024-06-01T00:00:00Z", count: 200_000, machine: "M-02" })
    // JSON: 200,000 rows are ~30 MB, more than the loopback sockets buffer, so an unread export stays open.
    const open = await Promise.all([0, 1].map(() => get("/api/oee/export/snapshots?format=json")))
    const readers = open.map((response) => (response.body as ReadableStream<Uint8Array>).getReader())
    await Promise.all(readers.map((reader) => reader.read()))
    const third = await get("/api/oee/export/snapshots?format=json&limit=1")
    expect(third.status).toBe(503)
    expect(third.headers.get("retry-after")).toBe("5")
    expect(((await third.json()) as { error: string }).error).toBe("busy")
    expect((await get("/metrics/today")).status).toBe(200)
    // Reading one to its end gives its place back before the client sees the end.
    while ((await (readers[0] as ReadableStreamDefaultReader<Uint8Array>).read()).done !== true);
    expect(await json("/api/oee/export/snapshots?machine_id=M-01&date_from=2025-01-01")).toHaveLength(5)
    await readers[1]?.cancel()

    // A client that stops reading (without going away) is ended after stallMs, and its place freed.
    const stalling = await serveReadApi({ sql: readerSql, port: 0, maxStreams: 1, streamLimits: { stallMs: 300 }, accessLog: false })
    try {
      const stalled = await fetch(`${stalling.url}/api/oee/export/snapshots?format=json`, { headers: { "X-API-Key": keys.all } })
      const reader = (stalled.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      // Not reading on: once stallMs has passed the server closes the cursor.
      await cursorsClosed()
      const readToEnd = async () => {
        for (let chunk = await reader.read(); chunk.done !== true; chunk = await reader.read());
      }
      await expect(readToEnd()).rejects.toThrow()
      expect((await fetch(`${stalling.url}/api/powerbi/daily-stats`, { headers: { "X-API-Key": keys.all } })).status).toBe(200)
    } finally {
      await stalling.close()
    }
    await added.remove()
  }, 60_000)

  it("a rebuild waits for an export still streaming from the old marts, readers keep reading, and it switches after", async () => {
    // Many more rows than the sockets buffer (loopback's grow to several MB each way, Postgres' to the API and the API's to
    // the client): a client that stops reading keeps the export's COPY open. 200,000 rows once fit, on a loaded machine.
    const BULK = 600_000
    await addSnapshots(owner, { prefix: "bulk-", from: "2022-01-01T00:00:00Z", count: BULK, machine: "M-01" })
    const streaming = await get("/api/oee/export/snapshots?format=csv&include_headers=false")
    const reader = (streaming.body as ReadableStream<Uint8Array>).getReader()
    let rest = new TextDecoder().decode((await reader.read()).value)
    let rebuilt = false
    const rebuild = rebuildProjection({ sql: owner, nc: stack.projector, projection: oeeProjection }).then((result) => {
      rebuilt = true
      return result
    })
    // The rebuild reaches the switch and waits on the streaming export's lock; poll until it does.
    for (let waiting = false; !waiting;) {
      const [row] =
        await owner`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT l.granted AND n.nspname = 'mart_oee'`
      waiting = (row?.n as number) > 0 || rebuilt
    }
    expect(await json("/api/oee/export/snapshots?machine_id=M-01&date_from=2025-01-01")).toHaveLength(5)
    expect(rebuilt).toBe(false)
    for (let chunk = await reader.read(); chunk.done !== true; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value)
    expect(parseCsv(rest)).toHaveLength(BULK + 10)
    const result = await rebuild
    expect(result.generation).toBe(2)
    expect(await json("/api/oee/export/snapshots")).toEqual(expectedSnapshots)
  }, 60_000)
})
