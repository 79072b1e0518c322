import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import Ajv2020 from "ajv/dist/2020.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { spawnMesh } from "../infra/local/projector-process.ts"
import { type ReportStack, startReportStack } from "../infra/local/reports.ts"
import { ABANDONED_MS, claimJob, findJob, renewLease } from "./jobs.ts"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
let stack: LogStack
let reports: ReportStack
let openapi: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> }

beforeAll(async () => {
  stack = await startLogStack()
  reports = await startReportStack(stack)
  openapi = (await (await fetch(`${reports.api.url}/openapi.json`)).json()) as typeof openapi
})

afterAll(async () => {
  await reports?.close()
  await stack?.dispose()
})

const call = async (method: string, path: string, key: string | undefined, body?: unknown, type = "application/json") => {
  const response = await fetch(`${reports.api.url}${path}`, {
    method,
    headers: { ...(key === undefined ? {} : { "X-API-Key": key }), ...(body === undefined ? {} : { "Content-Type": type }) },
    ...(body === undefined ? {} : { body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body) })
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

const ajv = new Ajv2020({ strict: false, allErrors: true })

/** The answer's body fits the schema the OpenAPI document gives for this path, method and status. */
const expectDocumented = (template: string, method: string, answer: { status: number; body: unknown }) => {
  const schema = openapi.paths[template]?.[method]?.responses[String(answer.status)]?.content?.["application/json"]?.schema
  expect(schema, `${method} ${template} documents a JSON answer for ${answer.status}`).toBeDefined()
  const validate = ajv.compile(schema as object)
  const valid = validate(answer.body)
  expect(valid ? [] : validate.errors, `${method} ${template} ${answer.status}`).toEqual([])
}

const SHEET = [
  "report_id,filter_label,column_name,allowed_values,default",
  "sales,Year,Calendar/Year,2023;2024,2024",
  "sales,Region,Store/Region,North;South;East,",
  "sales,Channel,Sales Channel/Name,Online;In store,Online"
].join("\r\n")

describe("the report registry and the export API", () => {
  it("registers a report, its pages and filters through the admin API, each answer as documented", async () => {
    const registered = await call("POST", "/api/admin/reports", reports.keys.admin, {
      report_id: "sales",
      title: "Sales overview",
      engine: "embed",
      embed_url: "http://127.0.0.1:9/reportEmbed?reportId=x&groupId=y",
      mart: "retail"
    })
    expect(registered.status).toBe(201)
    expectDocumented("/api/admin/reports", "post", registered)
    const pages = await call("PUT", "/api/admin/reports/sales/pages", reports.keys.admin, {
      pages: [
        { name: "ReportSection1", display_name: "Overview" },
        { name: "ReportSection2", display_name: "By store" },
        { name: "ReportSection3", display_name: "Trend" }
      ]
    })
    expect(pages.status).toBe(200)
    expectDocumented("/api/admin/reports/{report_id}/pages", "put", pages)
    const imported = await call("POST", "/api/admin/filters?file_name=filters.csv", reports.keys.admin, SHEET, "text/csv")
    expect(imported.status).toBe(200)
    expectDocumented("/api/admin/filters", "post", imported)

    const list = await call("GET", "/api/reports", reports.keys.reader)
    expectDocumented("/api/reports", "get", list)
    expect(list.body).toEqual({
      reports: [
        {
          report_id: "sales",
          title: "Sales overview",
          engine: "embed",
          workspace_id: null,
          powerbi_report_id: null,
          embed_url: "http://127.0.0.1:9/reportEmbed?reportId=x&groupId=y",
          mart: "retail",
          page_names: ["ReportSection1", "ReportSection2", "ReportSection3"]
        }
      ]
    })
    const pageList = await call("GET", "/api/pages/sales", reports.keys.reader)
    expectDocumented("/api/pages/{report_id}", "get", pageList)
    expect(pageList.body?.pages).toEqual([
      { name: "ReportSection1", display_name: "Overview" },
      { name: "ReportSection2", display_name: "By store" },
      { name: "ReportSection3", display_name: "Trend" }
    ])
    const filters = await call("GET", "/api/filters/sales", reports.keys.reader)
    expectDocumented("/api/filters/{report_id}", "get", filters)
    expect(filters.body).toEqual({
      filters: [
        { label: "Year", column: "Calendar/Year", allowed_values: [2023, 2024], default: 2024 },
        { label: "Region", column: "Store/Region", allowed_values: ["North", "South", "East"], default: null },
        { label: "Channel", column: "Sales Channel/Name", allowed_values: ["Online", "In store"], default: "Online" }
      ]
    })
  })

  it("refuses a registration the contract refuses, naming the field", async () => {
    const refused = await call("POST", "/api/admin/reports", reports.keys.admin, { report_id: "bad id!", title: "x", engine: "tableau" })
    expect(refused.status).toBe(400)
    expectDocumented("/api/admin/reports", "post", refused)
    const fields = (refused.body?.problems as ReadonlyArray<{ field: string }>).map((problem) => problem.field)
    expect(fields).toEqual(expect.arrayContaining(["report_id", "engine"]))
  })

  it("refuses a filter sheet with problems, naming each, and imports nothing", async () => {
    const bad = [
      "report_id,filter_label,column_name,allowed_values,default",
      "sales,Year,Calendar,2023;2024,2025",
      "nope,Region,Store/Region,North,"
    ].join("\n")
    const refused = await call("POST", "/api/admin/filters?file_name=bad.csv", reports.keys.admin, bad, "text/csv")
    expect(refused.status).toBe(422)
    expectDocumented("/api/admin/filters", "post", refused)
    expect((refused.body?.problems as ReadonlyArray<unknown>).length).toBeGreaterThanOrEqual(3)
    expect((await call("GET", "/api/filters/sales", reports.keys.reader)).body?.filters).toHaveLength(3)
  })

  it("answers every bad export request 400, naming the problem and the allowed values", async () => {
    const cases: ReadonlyArray<[unknown, string, ReadonlyArray<unknown> | undefined]> = [
      [{ report_id: "nope", page: "ReportSection1", format: "png" }, "report_id", ["sales"]],
      [{ report_id: "sales", page: "ReportSection9", format: "png" }, "page", ["ReportSection1", "ReportSection2", "ReportSection3"]],
      [
        { report_id: "sales", page: "ReportSection1", format: "png", filters: { Colour: "red" } },
        "filters.Colour",
        ["Year", "Region", "Channel"]
      ],
      [{ report_id: "sales", page: "ReportSection1", format: "png", filters: { Year: 2019 } }, "filters.Year", [2023, 2024]],
      [{ report_id: "sales", format: "png" }, "page", ["ReportSection1", "ReportSection2", "ReportSection3"]],
      [{ report_id: "sales", page: "ReportSection1", format: "gif" }, "format", undefined]
    ]
    for (const [body, field, allowed] of cases) {
      const answer = await call("POST", "/api/exports", reports.keys.reader, body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expectDocumented("/api/exports", "post", answer)
      const problem = (answer.body?.problems as ReadonlyArray<{ field: string; allowed?: ReadonlyArray<unknown> }>).find(
        (one) => one.field === field
      )
      expect(problem, `${JSON.stringify(body)} names ${field}: ${JSON.stringify(answer.body)}`).toBeDefined()
      if (allowed !== undefined) expect(problem?.allowed).toEqual(allowed)
    }
  })

  it("accepts a good export as a job, 202, documented, and answers its status", async () => {
    const accepted = await call("POST", "/api/exports", reports.keys.reader, {
      report_id: "sales",
      page: "ReportSection2",
      filters: { Region: ["North", "south"], Year: "2023" },
      format: "png"
    })
    expect(accepted.status).toBe(202)
    expectDocumented("/api/exports", "post", accepted)
    expect(accepted.body).toMatchObject({
      status: "NotStarted",
      pages: ["ReportSection2"],
      filter: "Calendar/Year eq 2023 and Store/Region in ('North','South') and Sales_x0020_Channel/Name eq 'Online'"
    })
    const status = await call("GET", `/api/exports/${accepted.body?.id as string}`, reports.keys.reader)
    expectDocumented("/api/exports/{id}", "get", status)
    const early = await fetch(`${reports.api.url}/api/exports/${accepted.body?.id as string}/file`, {
      headers: { "X-API-Key": reports.keys.reader }
    })
    expect(early.status).toBe(409)
    // The same request again joins the job in flight.
    const again = await call("POST", "/api/exports", reports.keys.reader, {
      report_id: "sales",
      page: "ReportSection2",
      filters: { Year: 2023, Region: ["North", "South"] },
      format: "png"
    })
    expect(again.body?.id).toBe(accepted.body?.id)

    // A worker's claim holds the job: a redelivery while its lease runs is told to wait, not rendered again.
    const id = accepted.body?.id as string
    const claimed = await claimJob(reports.sql, id, 3, 60_000)
    expect(claimed._tag).toBe("render")
    expect(await claimJob(reports.sql, id, 3, 60_000)).toMatchObject({ _tag: "busy", leaseLeftMs: expect.any(Number) })
    if (claimed._tag !== "render") return
    expect(await renewLease(reports.sql, claimed.job, 60_000)).toBe(true)
    expect(await renewLease(reports.sql, { ...claimed.job, claim: "another worker" }, 60_000)).toBe(false)

    // Untouched for longer than ABANDONED_MS (its worker and its message gone): the next identical request starts afresh.
    await reports.sql`UPDATE ingest.report_exports SET lease_until = now() - ${`${ABANDONED_MS + 1000} milliseconds`}::interval WHERE id = ${id}`
    const fresh = await call("POST", "/api/exports", reports.keys.reader, {
      report_id: "sales",
      page: "ReportSection2",
      filters: { Year: 2023, Region: ["North", "South"] },
      format: "png"
    })
    expect(fresh.status).toBe(202)
    expect(fresh.body?.id).not.toBe(id)
    expect(await findJob(reports.sql, id)).toMatchObject({ status: "Failed", error: expect.stringMatching(/abandoned/) })
  })

  it("answers ids that cannot be ids as unknown, never as a failure of ours", async () => {
    expect((await call("GET", "/api/pages/%00", reports.keys.reader)).status).toBe(404)
    expect((await call("GET", "/api/filters/a%2Fb", reports.keys.reader)).status).toBe(404)
    expect((await call("GET", "/api/exports/%00", reports.keys.reader)).status).toBe(404)
    expect((await call("GET", "/api/exports/exp_nope/file", reports.keys.reader)).status).toBe(404)
    const nul = await call("POST", "/api/exports", reports.keys.reader, { report_id: "sales\u0000", page: "ReportSection1", format: "png" })
    expect(nul.status).toBe(400)
    expect(nul.body?.problems).toEqual([expect.objectContaining({ field: "report_id" })])
    const control = await call("POST", "/api/admin/filters?file_name=bad%01.csv&report_id=sales", reports.keys.admin, SHEET, "text/csv")
    expect(control.status).toBe(422)
    expect(control.body?.problems).toEqual([
      expect.objectContaining({ column: "$.file_name", message: expect.stringMatching(/control characters/) })
    ])
    const huge = await fetch(`${reports.api.url}/api/admin/filters?file_name=big.csv`, {
      method: "POST",
      headers: { "X-API-Key": reports.keys.admin, "Content-Type": "text/csv" },
      body: "x".repeat(5 * 1024 * 1024 + 1)
    })
    expect(huge.status).toBe(413)
  })

  it("keeps keys to their scopes: none 401, another mart's 403, the reader may not change the registry, the admin may export", async () => {
    expect((await call("GET", "/api/reports", undefined)).status).toBe(401)
    expect((await call("GET", "/api/reports", reports.keys.other)).status).toBe(403)
    expect((await call("POST", "/api/admin/reports", reports.keys.reader, { report_id: "x", title: "x", engine: "embed" })).status).toBe(
      403
    )
    // An admin may export what it registers.
    expect((await call("POST", "/api/exports", reports.keys.admin, { report_id: "sales", format: "pdf" })).status).toBe(202)
    expect((await call("POST", "/api/exports", reports.keys.other, { report_id: "sales", format: "pdf" })).status).toBe(403)
    expect((await call("GET", "/api/pages/nope", reports.keys.reader)).status).toBe(404)
  })

  it("serves the filter sheet templates and the pages without a key", async () => {
    const csv = await fetch(`${reports.api.url}/reports/template.csv`)
    expect(csv.status).toBe(200)
    expect((await csv.text()).split(/\r?\n/)[0]?.toLowerCase()).toContain("filter_label")
    const xlsx = await fetch(`${reports.api.url}/reports/template.xlsx`)
    expect(new Uint8Array(await xlsx.arrayBuffer()).subarray(0, 2)).toEqual(new Uint8Array([0x50, 0x4b]))
    for (const page of ["admin", "picker"]) {
      const html = await fetch(`${reports.api.url}/reports/${page}`)
      expect(html.headers.get("content-type")).toContain("text/html")
    }
  })

  it("imports the known XLSX from the command line into exactly the expected registry rows, and refuses the five-mistake sheet whole", async () => {
    for (const [id, title] of [
      ["sales", "Sales overview"],
      ["oee", "OEE"]
    ])
      expect(
        (
          await call("POST", "/api/admin/reports", reports.keys.admin, {
            report_id: id,
            title,
            engine: "embed",
            embed_url: "http://127.0.0.1:9/e"
          })
        ).status
      ).toBe(201)
    const run = async (args: ReadonlyArray<string>) => {
      const child = spawnMesh(["reports", ...args], { ...reports.env, INIT_CWD: join(ROOT, "reports", "fixtures") })
      return { code: await child.exited, stderr: child.stderr() }
    }
    const good = await run(["import", "filters.xlsx"])
    expect(good.code, good.stderr).toBe(0)
    const mart =
      await reports.sql`SELECT report_id, filter_label, column_name, allowed_values, default_value FROM mart_reports.filters ORDER BY report_id, position`
    expect(mart.map((row) => ({ ...row }))).toEqual([
      { report_id: "oee", filter_label: "Line", column_name: "Machine/Line", allowed_values: '["L1","L2","L3"]', default_value: '"L1"' },
      {
        report_id: "oee",
        filter_label: "Shift",
        column_name: "Shift/Name",
        allowed_values: '["Early","Late","Night"]',
        default_value: "null"
      },
      { report_id: "sales", filter_label: "Year", column_name: "Calendar/Year", allowed_values: "[2023,2024]", default_value: "2024" },
      {
        report_id: "sales",
        filter_label: "Region",
        column_name: "Store/Region",
        allowed_values: '["North","South","East","West"]',
        default_value: "null"
      },
      {
        report_id: "sales",
        filter_label: "Channel",
        column_name: "Sales Channel/Name",
        allowed_values: '["Online","In store"]',
        default_value: '"Online"'
      }
    ])
    const bad = await run(["import", "five-mistakes.xlsx"])
    expect(bad.code).not.toBe(0)
    const lines = bad.stderr.split("\n").filter((line) => /^filters row \d+, column /.test(line))
    expect(lines).toHaveLength(5)
    expect(lines[0]).toMatch(/^filters row 3, column C \(column_name\): the column_name is empty/)
    expect(lines[4]).toMatch(/^filters row 7, column A \(report_id\) \("nope"\): no report "nope" is registered/)
    expect(bad.stderr).toContain("5 problem(s) in five-mistakes.xlsx; nothing was imported")
    const after = await reports.sql`SELECT count(*)::int AS n FROM mart_reports.filters`
    expect(after[0]?.n).toBe(5)
  }, 60_000)
})
