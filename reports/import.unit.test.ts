import { readFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { importFilterSheet, splitValues } from "./import.ts"
import { filterTemplate } from "./template.ts"

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures")
const fixture = async (name: string) => ({ bytes: new Uint8Array(await readFile(join(FIXTURES, name))), fileName: name })
const KNOWN = { knownReports: ["sales", "oee"] }

/** What filters.xlsx and filters.csv both hold, report by report (reports/fixtures/generate.ts). */
const EXPECTED = [
  {
    report_id: "sales",
    filters: [
      { label: "Year", column: "Calendar/Year", allowed_values: [2023, 2024], default: 2024 },
      { label: "Region", column: "Store/Region", allowed_values: ["North", "South", "East", "West"], default: null },
      { label: "Channel", column: "Sales Channel/Name", allowed_values: ["Online", "In store"], default: "Online" }
    ]
  },
  {
    report_id: "oee",
    filters: [
      { label: "Line", column: "Machine/Line", allowed_values: ["L1", "L2", "L3"], default: "L1" },
      { label: "Shift", column: "Shift/Name", allowed_values: ["Early", "Late", "Night"], default: null }
    ]
  }
]

const csv = (...lines: ReadonlyArray<string>) => ({ bytes: new TextEncoder().encode(lines.join("\n")), fileName: "sheet.csv" })
const HEADER = "report_id,filter_label,column_name,allowed_values,default"

describe("filter sheet import", () => {
  it("reads the known XLSX and CSV into exactly the expected filters", async () => {
    for (const name of ["filters.xlsx", "filters.csv"]) {
      const result = await importFilterSheet(await fixture(name), KNOWN)
      expect(result.ok, name).toBe(true)
      if (!result.ok) continue
      expect(
        result.reports.map(({ report_id, filters }) => ({ report_id, filters })),
        name
      ).toEqual(EXPECTED)
    }
  })

  it("refuses the sheet with five mistakes with five problems, each by sheet, row, column and value", async () => {
    const result = await importFilterSheet(await fixture("five-mistakes.xlsx"), KNOWN)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.problems.map(({ sheet, row, column, value }) => ({ sheet, row, column, value }))).toEqual([
      { sheet: "filters", row: 3, column: "C (column_name)", value: "" },
      { sheet: "filters", row: 4, column: "B (filter_label)", value: "Year" },
      { sheet: "filters", row: 5, column: "E (default)", value: "Phone" },
      { sheet: "filters", row: 6, column: "C (column_name)", value: "Store" },
      { sheet: "filters", row: 7, column: "A (report_id)", value: "nope" }
    ])
    const messages = result.problems.map((problem) => problem.message)
    expect(messages[0]).toMatch(/column_name is empty/)
    expect(messages[1]).toMatch(/labelled "Year" already, in row 2/)
    expect(messages[2]).toMatch(/default is not among the allowed values \("Online", "In store"\)/)
    expect(messages[3]).toMatch(/URL filter cannot address this column.*Table\/Field/)
    expect(messages[4]).toMatch(/no report "nope" is registered/)
  })

  it("names a missing or unknown column in the header row", async () => {
    const result = await importFilterSheet(csv("report_id,filter_label,allowed_values,colour", "sales,Year,2023,"), KNOWN)
    expect(result).toEqual({
      ok: false,
      problems: [
        expect.objectContaining({
          row: 1,
          column: "D (colour)",
          value: "colour",
          message: expect.stringMatching(/unknown column "colour"/)
        }),
        expect.objectContaining({ row: 1, column: "column_name", message: expect.stringMatching(/no column_name column/) })
      ]
    })
  })

  it("takes the report from --report when the sheet has no report_id column, and refuses a row for another", async () => {
    const plain = await importFilterSheet(csv("filter_label,column_name,allowed_values", "Year,Calendar/Year,2023;2024"), {
      ...KNOWN,
      reportId: "oee"
    })
    expect(plain).toMatchObject({ ok: true, reports: [{ report_id: "oee", filters: [{ label: "Year", default: null }] }] })
    const other = await importFilterSheet(csv(HEADER, "sales,Year,Calendar/Year,2023,"), { ...KNOWN, reportId: "oee" })
    expect(other).toMatchObject({ ok: false, problems: [{ row: 2, column: "A (report_id)", value: "sales" }] })
    const none = await importFilterSheet(csv("filter_label,column_name,allowed_values", "Year,Calendar/Year,2023"), KNOWN)
    expect(none).toMatchObject({ ok: false, problems: [{ row: 1, column: "report_id" }] })
  })

  it("refuses files that are not a sheet, naming the fix", async () => {
    const xlsx = await fixture("filters.xlsx")
    expect(await importFilterSheet({ ...xlsx, fileName: "filters.csv" }, KNOWN)).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/name it \.xlsx/) }]
    })
    expect(await importFilterSheet({ bytes: new TextEncoder().encode("a,b"), fileName: "f.xlsx" }, KNOWN)).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/not an Excel workbook/) }]
    })
    expect(await importFilterSheet({ bytes: new Uint8Array([1]), fileName: "f.xls" }, KNOWN)).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/save it as \.xlsx/) }]
    })
    expect(await importFilterSheet(csv(HEADER), KNOWN)).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/no filters/) }]
    })
  })

  it("splits values on ; (\\; a semicolon in a value) and types them all alike", () => {
    expect(splitValues("2023; 2024")).toEqual([2023, 2024])
    expect(splitValues("2023;next")).toEqual(["2023", "next"])
    expect(splitValues("TRUE;false")).toEqual([true, false])
    expect(splitValues("a\\;b;c")).toEqual(["a;b", "c"])
    expect(splitValues(" ; ")).toEqual([])
    expect(splitValues(7)).toEqual([7])
    expect(splitValues(null)).toEqual([])
  })

  it("serves templates that import as they are", async () => {
    for (const format of ["xlsx", "csv"] as const) {
      const result = await importFilterSheet(
        { bytes: await filterTemplate(format), fileName: `template.${format}` },
        { knownReports: ["sales"] }
      )
      expect(result, format).toMatchObject({
        ok: true,
        reports: [{ report_id: "sales", filters: [{ label: "Year" }, { label: "Region" }] }]
      })
    }
  })
})
