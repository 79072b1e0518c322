import { describe, expect, it } from "vitest"
import { isColumnName, isTableName, LIMITS, newPeak, newWindow, notePeak, pushTypeOf, valueProblem, waitToFit, weightIn } from "./rules.ts"

describe("Power BI's push rules", () => {
  it("takes table names by the API's pattern: 1 to 100 characters, none of . / \\ ( ) [ ] { } , ; : ' \" ! ? $ % & * + < = > |", () => {
    for (const name of ["FactEvent", "Dim Agent", "dim_date", "Umsätze #1", "a".repeat(100)]) expect(isTableName(name), name).toBe(true)
    for (const name of ["", "a".repeat(101), "fact.event", "a/b", "(x)", "x,y", "x;y", "x'y", 'x"y', "x?", "x$", "x*", "x=y", "x|y"])
      expect(isTableName(name), name).toBe(false)
    expect([isColumnName("Sales (€)"), isColumnName("")]).toEqual([true, false])
  })

  it("reads column types as the API spells them, in any case", () => {
    expect(["Int64", "int64", "Double", "bool", "Boolean", "DateTime", "string", "Decimal"].map(pushTypeOf)).toEqual([
      "Int64",
      "Int64",
      "Double",
      "Boolean",
      "Boolean",
      "DateTime",
      "String",
      "Decimal"
    ])
    expect([pushTypeOf("Int32"), pushTypeOf(7)]).toEqual([undefined, undefined])
  })

  it("checks each value against its column's type, null always allowed", () => {
    expect(valueProblem("Int64", 3)).toBeUndefined()
    expect(valueProblem("Int64", 1.5)).toMatch(/whole number/)
    expect(valueProblem("Int64", "3")).toMatch(/whole number/)
    expect(valueProblem("Double", Number.NaN)).toMatch(/finite number/)
    expect(valueProblem("Double", Number.MAX_VALUE)).toMatch(/MaxValue/)
    expect(valueProblem("Boolean", 1)).toMatch(/true or false/)
    expect(valueProblem("DateTime", "2025-01-15T10:00:00Z")).toBeUndefined()
    expect(valueProblem("DateTime", "yesterday")).toMatch(/date and time/)
    expect(valueProblem("String", "x".repeat(LIMITS.stringCharacters))).toBeUndefined()
    expect(valueProblem("String", "x".repeat(LIMITS.stringCharacters + 1))).toMatch(/4000 characters/)
    for (const type of ["Int64", "Double", "Boolean", "DateTime", "String"] as const) expect(valueProblem(type, null)).toBeUndefined()
  })

  it("counts a sliding window and says how long until more fits", () => {
    const window = newWindow()
    for (const at of [0, 10_000, 20_000]) window.events.push({ at, weight: 40 })
    expect(weightIn(window, 30_000, 60_000)).toBe(120)
    expect(waitToFit(window, 30_000, 60_000, 120, 0)).toBe(0)
    expect(waitToFit(window, 30_000, 60_000, 120, 1)).toBe(30_000)
    expect(waitToFit(window, 30_000, 60_000, 120, 41)).toBe(40_000)
    expect(waitToFit(window, 30_000, 60_000, 120, 121)).toBe(60_000)
    expect(weightIn(window, 65_000, 60_000)).toBe(80)
  })

  it("keeps the peak of a rolling window: the most weight any span of that length held", () => {
    const minute = newPeak(60_000)
    expect([notePeak(minute, 0, 50), notePeak(minute, 30_000, 50), notePeak(minute, 59_999, 10)]).toEqual([50, 100, 110])
    // At 60,000 the event at 0 has left the window: 50 + 10 + 30 = 90, under the peak of 110.
    expect(notePeak(minute, 60_000, 30)).toBe(110)
    expect(notePeak(minute, 60_001, 25)).toBe(115)
    expect(notePeak(minute, 10 * 60_000, 1)).toBe(115)
    expect(minute.window.events.length).toBe(1)
  })
})
