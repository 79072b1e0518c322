import { describe, expect, it } from "vitest"
import type { Page, Report, ReportFilter } from "./model.ts"
import { cacheKeyOf, type RegistryView, validateExport } from "./validate.ts"

const report: Report = {
  report_id: "sales",
  title: "Sales",
  engine: "embed",
  workspace_id: null,
  powerbi_report_id: null,
  embed_url: "https://app.powerbi.com/reportEmbed?reportId=r",
  mart: "retail"
}
const pages: ReadonlyArray<Page> = [
  { name: "ReportSection1", display_name: "Overview" },
  { name: "ReportSection2", display_name: "Stores" }
]
const filters: ReadonlyArray<ReportFilter> = [
  { label: "Year", column: "Calendar/Year", allowed_values: [2023, 2024], default: 2024 },
  { label: "Region", column: "Store/Region", allowed_values: ["North", "South"], default: null }
]
const registry = (id: string): RegistryView => ({
  reportIds: ["sales", "oee"],
  report: id === "sales" ? report : undefined,
  pages,
  filters
})

const problemsOf = (body: unknown) => {
  const result = validateExport(body, registry)
  return result.ok ? [] : result.problems
}

describe("export request validation", () => {
  it("takes a good request: defaults filled in, values as the registry spells them, pages in the order asked", () => {
    const result = validateExport(
      { report_id: "sales", pages: ["ReportSection2", "ReportSection1"], filters: { Region: ["north", "South"] }, format: "pdf" },
      registry
    )
    expect(result).toEqual({
      ok: true,
      value: {
        report,
        pages: [pages[1], pages[0]],
        filter: "Calendar/Year eq 2024 and Store/Region in ('North','South')",
        format: "pdf",
        filters: { Region: ["North", "South"], Year: [2024] }
      }
    })
    const all = validateExport({ report_id: "sales", format: "pdf", filters: { Year: "2023" } }, registry)
    expect(all.ok && all.value.pages).toEqual(pages)
    expect(all.ok && all.value.filter).toBe("Calendar/Year eq 2023")
  })

  it("names every problem with what is allowed", () => {
    expect(problemsOf({ report_id: "nope", page: "ReportSection1", format: "png" })).toEqual([
      { field: "report_id", message: 'no report "nope" is registered', allowed: ["sales", "oee"] }
    ])
    expect(problemsOf({ report_id: "sales", page: "X", filters: { Colour: "red", Year: 1999 }, format: "png" })).toEqual([
      { field: "page", message: 'report sales has no page "X"', allowed: ["ReportSection1", "ReportSection2"] },
      { field: "filters.Colour", message: 'report sales has no filter "Colour"', allowed: ["Year", "Region"] },
      { field: "filters.Year", message: "1999 is not allowed for Year", allowed: [2023, 2024] }
    ])
    expect(problemsOf({ report_id: "sales", format: "png" })).toEqual([
      expect.objectContaining({ field: "page", message: expect.stringMatching(/a PNG shows one page/) })
    ])
    expect(problemsOf({ report_id: "sales", page: "ReportSection1", pages: ["ReportSection1"], format: "pdf" })).toEqual([
      expect.objectContaining({ field: "pages", message: "give page or pages, not both" })
    ])
    expect(problemsOf({ report_id: "sales", page: "ReportSection1", filters: { Region: [] }, format: "png" })).toEqual([
      expect.objectContaining({ field: "filters.Region", allowed: ["North", "South"] })
    ])
  })

  it("takes filters labelled like an object's own properties as filters like any other", () => {
    const odd = (id: string): RegistryView => ({
      ...registry(id),
      filters: [
        { label: "constructor", column: "T/constructor", allowed_values: ["a"], default: null },
        { label: "toString", column: "T/toString", allowed_values: ["b"], default: "b" }
      ]
    })
    expect(validateExport({ report_id: "sales", page: "ReportSection1", format: "png" }, odd)).toMatchObject({
      ok: true,
      value: { filter: "T/toString eq 'b'" }
    })
  })

  it("names the field of a body of the wrong shape", () => {
    expect(problemsOf({ report_id: "sales", format: "gif" })).toEqual([expect.objectContaining({ field: "format" })])
    expect(problemsOf({ format: "png" })).toEqual([expect.objectContaining({ field: "report_id" })])
    expect(problemsOf([])).toEqual([expect.objectContaining({ field: "body" })])
  })

  it("keys the cache by report, pages, filter, format and data version, and nothing else", () => {
    const one = validateExport({ report_id: "sales", page: "ReportSection1", filters: { Region: "North" }, format: "png" }, registry)
    const same = validateExport(
      { report_id: "sales", page: "ReportSection1", filters: { Region: "north", Year: 2024 }, format: "png" },
      registry
    )
    const other = validateExport({ report_id: "sales", page: "ReportSection1", filters: { Region: "South" }, format: "png" }, registry)
    if (!one.ok || !same.ok || !other.ok) throw new Error("valid requests refused")
    expect(cacheKeyOf(same.value, "1:10")).toBe(cacheKeyOf(one.value, "1:10"))
    expect(cacheKeyOf(one.value, "1:11")).not.toBe(cacheKeyOf(one.value, "1:10"))
    expect(cacheKeyOf(other.value, "1:10")).not.toBe(cacheKeyOf(one.value, "1:10"))
    expect(cacheKeyOf({ ...one.value, format: "pdf" }, "1:10")).not.toBe(cacheKeyOf(one.value, "1:10"))
  })
})
