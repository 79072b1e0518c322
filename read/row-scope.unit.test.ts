import { describe, expect, it } from "vitest"
import { describeRowScope, parseRowScope, readsScopedRows, sessionScope } from "./row-scope.ts"

describe("row scopes from flags", () => {
  it("reads stores, regions, both, or all rows; nothing given is no scope", () => {
    expect(parseRowScope({ stores: "47, 48,47" })).toEqual({ allRows: false, stores: ["47", "48"], regions: [] })
    expect(parseRowScope({ regions: "Northeast" })).toEqual({ allRows: false, stores: [], regions: ["Northeast"] })
    expect(parseRowScope({ stores: "47", regions: "West" })).toEqual({ allRows: false, stores: ["47"], regions: ["West"] })
    expect(parseRowScope({ allRows: true })).toEqual({ allRows: true })
    expect(parseRowScope({})).toBeUndefined()
    expect(parseRowScope({ allRows: false })).toBeUndefined()
  })

  it("names what is wrong with a flag", () => {
    expect(() => parseRowScope({ stores: "47,,48" })).toThrow(/--stores "47,,48" has an empty entry/)
    expect(() => parseRowScope({ stores: "47;DROP" })).toThrow(/--stores: "47;DROP" is not a store id/)
    expect(() => parseRowScope({ regions: "x".repeat(201) })).toThrow(/--regions: .* is longer than 200 characters/)
    expect(() => parseRowScope({ allRows: true, stores: "47" })).toThrow(/--all-rows sees every row: give it without --stores or --regions/)
  })

  it("says in words what a scope sees, and sets it as JSON the scope function reads", () => {
    expect(describeRowScope({ allRows: true })).toBe("all rows")
    expect(describeRowScope({ allRows: false, stores: ["47", "48"], regions: ["West"] })).toBe("stores 47,48 + regions West")
    expect(describeRowScope({ allRows: false, stores: [], regions: [] })).toBe("no rows")
    expect(JSON.parse(sessionScope({ allRows: false, stores: ["47"], regions: [] }))).toEqual({
      all_rows: false,
      stores: ["47"],
      regions: []
    })
    expect(JSON.parse(sessionScope({ allRows: true }))).toEqual({ all_rows: true })
  })

  it("knows which keys read rows scoped by store: retail, or every mart", () => {
    expect(readsScopedRows(["retail"])).toBe(true)
    expect(readsScopedRows(["*"])).toBe(true)
    expect(readsScopedRows(["warehouse", "oee"])).toBe(false)
  })
})
