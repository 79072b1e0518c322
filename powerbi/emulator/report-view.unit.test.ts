import { PNG } from "pngjs"
import { describe, expect, it } from "vitest"
import { colourOf, decodeName, pagePng, parseFilter, viewOf } from "./report-view.ts"

const ROWS = [
  { Region: "North", Year: 2023 },
  { Region: "South", Year: 2023 },
  { Region: "North", Year: 2024 },
  { Region: "O'Neil", Year: 2024 }
]

describe("the emulated report's picture", () => {
  it("reads Power BI's URL filter: eq, ne, comparisons, in, escaped names, quoted quotes", () => {
    expect(parseFilter("Store/Region eq 'North' and Store/Year ge 2024")).toEqual({
      ok: true,
      conditions: [
        { table: "Store", column: "Region", op: "eq", values: ["North"] },
        { table: "Store", column: "Year", op: "ge", values: [2024] }
      ]
    })
    expect(parseFilter("Sales_x0020_Channel/Name in ('O''Neil', 'x')")).toEqual({
      ok: true,
      conditions: [{ table: "Sales Channel", column: "Name", op: "in", values: ["O'Neil", "x"] }]
    })
    expect(decodeName("Gr_x00F6__x00DF_e")).toBe("Größe")
  })

  it("refuses what Power BI refuses, saying where", () => {
    expect(parseFilter("Store eq 'North'")).toMatchObject({ ok: false, message: expect.stringMatching(/Table\/Field at character/) })
    expect(parseFilter("Store/Region like 'N'")).toMatchObject({ ok: false, message: expect.stringMatching(/unknown operator/) })
    expect(parseFilter("Store/Region gt 'N'")).toMatchObject({ ok: false, message: expect.stringMatching(/numbers and dates/) })
    expect(parseFilter("INFO/Region eq 1")).toMatchObject({ ok: false, message: expect.stringMatching(/INF/) })
    expect(parseFilter(Array.from({ length: 11 }, (_, i) => `T/F eq ${i}`).join(" and "))).toMatchObject({
      ok: false,
      message: expect.stringMatching(/at most 10/)
    })
  })

  it("draws one block per selected row, strings compared without case, coloured by value", () => {
    const parsed = parseFilter("Store/Region eq 'north'")
    if (!parsed.ok) throw new Error(parsed.message)
    const view = viewOf("Overview", ROWS, parsed.conditions, "Region")
    expect(view.blocks.map((block) => block.value)).toEqual(["North", "North"])
    expect(viewOf("Overview", ROWS, [], "Region").blocks).toHaveLength(4)
    const image = PNG.sync.read(Buffer.from(pagePng(view)))
    const north = colourOf("North").join(",")
    let found = 0
    for (let i = 0; i < image.data.length; i += 4) if (`${image.data[i]},${image.data[i + 1]},${image.data[i + 2]}` === north) found++
    expect(found).toBeGreaterThan(1000)
  })

  it("colours values apart from the page's white, grey and black", () => {
    for (const value of ["North", "South", "East", "West", "", "O'Neil"]) {
      const [r, g, b] = colourOf(value)
      expect(Math.max(r, g, b) - Math.min(r, g, b), value).toBeGreaterThan(200)
    }
    expect(colourOf("North")).not.toEqual(colourOf("South"))
  })
})
