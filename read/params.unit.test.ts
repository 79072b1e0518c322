import { describe, expect, it } from "vitest"
import { BadParameter } from "./errors.ts"
import { type ExportEndpoint, exportEndpoints } from "./exports.ts"
import { API_KEY_PARAM, MAX_LIMIT, parseInstant, parseParams, type ParsedParams } from "./params.ts"

const endpoint = (path: string): ExportEndpoint => {
  const found = exportEndpoints.find((candidate) => candidate.path === path)
  if (found === undefined) throw new Error(`no export at ${path}`)
  return found
}

const snapshots = endpoint("/api/oee/export/snapshots")
const downtime = endpoint("/api/oee/export/downtime")
const dailyStats = endpoint("/api/powerbi/daily-stats")

/** Parses `search` (a raw query string, decoded as a server would) against an endpoint's declarations. */
const parse = (search: string, at: ExportEndpoint = snapshots): ParsedParams =>
  parseParams(at.params, new URLSearchParams(search), at.defaultFormat)

/** The BadParameter `action` throws; fails the test when it throws something else or nothing. */
const rejection = (action: () => unknown): BadParameter => {
  try {
    action()
  } catch (error) {
    if (error instanceof BadParameter) return error
    throw error
  }
  throw new Error("was accepted")
}

const rejected = (search: string, at: ExportEndpoint = snapshots) => rejection(() => parse(search, at))

describe("parseParams without parameters", () => {
  it("gives the endpoint's default format, an open window, no limit, the booleans' defaults and no texts", () => {
    expect(parse("")).toEqual({ format: "json", window: {}, booleans: { include_headers: true, csv_raw: false }, texts: {} })
  })

  it("fills in every boolean an endpoint declares, each with its own default", () => {
    expect(parse("", downtime).booleans).toEqual({ include_resolved: true, include_headers: true, csv_raw: false })
  })
})

describe("date windows", () => {
  it("reads a whole day as from its start to the start of the next day, so the end day is included", () => {
    expect(parse("date_from=2025-01-15&date_to=2025-01-15").window).toEqual({
      from: "2025-01-15T00:00:00.000Z",
      to: "2025-01-16T00:00:00.000Z"
    })
  })

  it("reads instants as given, the end exclusive, with offsets turned into UTC", () => {
    expect(parse("date_from=2025-01-15T08:30:00Z&date_to=2025-01-15T10:00:00.250-02:00").window).toEqual({
      from: "2025-01-15T08:30:00.000Z",
      to: "2025-01-15T12:00:00.250Z"
    })
  })

  it("takes an offset whose unencoded + arrived as a space", () => {
    expect(parse("date_from=2025-01-15T10:00:00+05:00").window).toEqual({ from: "2025-01-15T05:00:00.000Z" })
    expect(parse("date_from=2025-01-15T10:00:00%2B05:00").window).toEqual({ from: "2025-01-15T05:00:00.000Z" })
  })

  it("accepts the instant forms Power BI and .NET write: no seconds, and seven fractional digits", () => {
    expect(parse("date_from=2025-01-15T10:00Z").window.from).toBe("2025-01-15T10:00:00.000Z")
    expect(parse("date_to=2025-02-01T00:00:00.0000000%2B00:00").window.to).toBe("2025-02-01T00:00:00.000Z")
  })

  it("allows an open end on either side", () => {
    expect(parse("date_from=2025-01-15").window).toEqual({ from: "2025-01-15T00:00:00.000Z" })
    expect(parse("date_to=2025-01-15").window).toEqual({ to: "2025-01-16T00:00:00.000Z" })
  })

  it("uses the names an endpoint declares: the warehouse's start_date and end_date", () => {
    expect(parse("start_date=2025-01-01&end_date=2025-01-31", dailyStats).window).toEqual({
      from: "2025-01-01T00:00:00.000Z",
      to: "2025-02-01T00:00:00.000Z"
    })
    expect(rejected("date_from=2025-01-01", dailyStats).parameter).toBe("date_from")
  })

  it("ends a leap year's February on its 29th and the year on 31 December", () => {
    expect(parse("date_to=2024-02-29").window.to).toBe("2024-03-01T00:00:00.000Z")
    expect(parse("date_to=2025-12-31").window.to).toBe("2026-01-01T00:00:00.000Z")
  })

  it("accepts the first and last years a bound may name, 1900 and 9998", () => {
    expect(parse("date_from=1900-01-01&date_to=9998-12-31").window).toEqual({
      from: "1900-01-01T00:00:00.000Z",
      to: "9999-01-01T00:00:00.000Z"
    })
  })

  it.each([
    ["2025-02-29", "a day February 2025 does not have"],
    ["2025-13-01", "a thirteenth month"],
    ["2025-04-31", "the 31st of a 30-day month"],
    ["2025-00-10", "a month zero"],
    ["1899-12-31", "a year before 1900"],
    ["9999-01-01", "a year after 9998"],
    ["2025-1-5", "unpadded digits"],
    ["15/01/2025", "a day-first date"],
    ["20250115", "a basic-format date"],
    ["2025-01-15T10:00:00", "an instant without an offset"],
    ["2025-01-15 10:00:00Z", "a space instead of T"],
    ["2025-01-15T10:00:00z", "a lower-case z"],
    ["2025-02-30T00:00:00Z", "an instant on a day that does not exist"],
    ["2025-01-15T25:00:00Z", "an hour 25"],
    ["2025-01-15T10:00:00.12345678Z", "eight fractional digits"],
    ["yesterday", "a word"],
    ["", "an empty value"]
  ])("rejects %j (%s) as date_from, naming it and the forms it takes", (value) => {
    const error = rejected(`date_from=${encodeURIComponent(value)}`)
    expect(error.parameter).toBe("date_from")
    expect(error.message).toContain(JSON.stringify(value))
    expect(error.message).toContain("YYYY-MM-DD")
  })

  it("rejects a bad end as date_to, not date_from", () => {
    expect(rejected("date_from=2025-01-15&date_to=2025-01-32").parameter).toBe("date_to")
  })

  it("rejects an end day before the start day, naming the end", () => {
    const error = rejected("date_from=2025-01-15&date_to=2025-01-14")
    expect(error.parameter).toBe("date_to")
    expect(error.message).toContain("date_from")
  })

  it("rejects an end day that ends where an instant start begins, which would leave nothing", () => {
    expect(rejected("date_from=2025-01-16T00:00:00Z&date_to=2025-01-15").parameter).toBe("date_to")
    expect(parse("date_from=2025-01-15T23:59:59Z&date_to=2025-01-15").window).toEqual({
      from: "2025-01-15T23:59:59.000Z",
      to: "2025-01-16T00:00:00.000Z"
    })
  })

  it("rejects an end instant before the start instant, but lets an empty window of two equal instants through", () => {
    expect(rejected("date_from=2025-01-15T10:00:00Z&date_to=2025-01-15T09:59:59.999Z").parameter).toBe("date_to")
    expect(parse("date_from=2025-01-15T10:00:00Z&date_to=2025-01-15T10:00:00Z").window).toEqual({
      from: "2025-01-15T10:00:00.000Z",
      to: "2025-01-15T10:00:00.000Z"
    })
  })

  it("compares the window in UTC, whatever offsets the bounds carry", () => {
    // 10:00+05:00 is 05:00Z, before 06:00Z.
    expect(parse("date_from=2025-01-15T10:00:00%2B05:00&date_to=2025-01-15T06:00:00Z").window).toEqual({
      from: "2025-01-15T05:00:00.000Z",
      to: "2025-01-15T06:00:00.000Z"
    })
    expect(rejected("date_from=2025-01-15T06:00:00Z&date_to=2025-01-15T10:00:00%2B05:00").parameter).toBe("date_to")
  })
})

describe("parseInstant", () => {
  it("tells a whole day from an instant", () => {
    expect(parseInstant("x", "2025-01-15")).toEqual({ millis: Date.UTC(2025, 0, 15), wholeDay: true })
    expect(parseInstant("x", "2025-01-15T00:00:00Z")).toEqual({ millis: Date.UTC(2025, 0, 15), wholeDay: false })
  })

  it("names the parameter it was given in its rejection", () => {
    expect(rejection(() => parseInstant("RangeStart", "soon")).parameter).toBe("RangeStart")
  })
})

describe("limit", () => {
  it("takes whole numbers from 1 to MAX_LIMIT", () => {
    expect(parse("limit=1").limit).toBe(1)
    expect(parse(`limit=${MAX_LIMIT}`).limit).toBe(MAX_LIMIT)
    expect(parse("limit=0250").limit).toBe(250)
  })

  it("is absent, not zero or Infinity, when not given", () => {
    expect(parse("")).not.toHaveProperty("limit")
  })

  it.each(["0", `${MAX_LIMIT + 1}`, "-1", "1.5", "1e3", " 5", "0x10", "ten", "", "99999999"])(
    "rejects %j, naming limit and its range",
    (value) => {
      const error = rejected(`limit=${encodeURIComponent(value)}`)
      expect(error.parameter).toBe("limit")
      expect(error.message).toContain(String(MAX_LIMIT))
    }
  )
})

describe("booleans", () => {
  it.each([
    ["true", true],
    ["TRUE", true],
    ["1", true],
    ["Yes", true],
    ["false", false],
    ["False", false],
    ["0", false],
    ["no", false]
  ])("reads %j as %s", (value, expected) => {
    expect(parse(`include_headers=${value}&csv_raw=${value}`).booleans).toEqual({ include_headers: expected, csv_raw: expected })
  })

  it("keeps the defaults of the booleans not given", () => {
    expect(parse("csv_raw=true").booleans).toEqual({ include_headers: true, csv_raw: true })
    expect(parse("include_resolved=false", downtime).booleans).toEqual({ include_resolved: false, include_headers: true, csv_raw: false })
  })

  it.each(["maybe", "", "on", "2", "t"])("rejects %j, naming the boolean", (value) => {
    const error = rejected(`include_resolved=${value}`, downtime)
    expect(error.parameter).toBe("include_resolved")
    expect(error.message).toContain("true or false")
  })
})

describe("format", () => {
  it("takes any of the endpoint's formats, in place of its default", () => {
    for (const format of ["csv", "json", "xlsx"] as const) expect(parse(`format=${format}`).format).toBe(format)
  })

  it.each(["CSV", "xml", "parquet", ""])("rejects %j, listing the formats it takes", (value) => {
    const error = rejected(`format=${value}`)
    expect(error.parameter).toBe("format")
    expect(error.message).toContain("csv, json, xlsx")
  })
})

describe("text filters", () => {
  it("keeps each filter given, exactly as given, and no others", () => {
    expect(parse("machine_id=M-01&shift_id=Night%20%26%20Day").texts).toEqual({ machine_id: "M-01", shift_id: "Night & Day" })
  })

  it("keeps quotes and SQL as plain text: they are bound, never spliced", () => {
    expect(parse(`line_id=${encodeURIComponent("L'1; DROP TABLE x; --")}`).texts).toEqual({ line_id: "L'1; DROP TABLE x; --" })
  })

  it("takes up to 200 characters and rejects an empty value or a longer one", () => {
    expect(parse(`machine_id=${"m".repeat(200)}`).texts.machine_id).toHaveLength(200)
    for (const value of ["", "m".repeat(201)]) {
      const error = rejected(`machine_id=${value}`)
      expect(error.parameter).toBe("machine_id")
      expect(error.message).toContain("200")
    }
  })
})

describe("parameters that are not the endpoint's", () => {
  it("rejects an unknown one by its name, listing those the endpoint accepts", () => {
    const error = rejected("date_from=2025-01-15&machine=M-01")
    expect(error.parameter).toBe("machine")
    for (const spec of snapshots.params) expect(error.message).toContain(spec.name)
  })

  it("rejects a filter another endpoint has: status belongs to shift reports, not snapshots", () => {
    expect(parse("status=open", endpoint("/api/oee/export/shift-reports")).texts).toEqual({ status: "open" })
    expect(rejected("status=open").parameter).toBe("status")
  })

  it("rejects a parameter given twice, even with the same value", () => {
    const error = rejected("limit=5&limit=5")
    expect(error.parameter).toBe("limit")
    expect(error.message).toContain("more than once")
  })

  it("lets the API key through, even twice, without treating it as a parameter", () => {
    expect(parse(`${API_KEY_PARAM}=imk_x&${API_KEY_PARAM}=imk_y&limit=3`)).toEqual({ ...parse(""), limit: 3 })
  })
})

describe("every export's declarations", () => {
  it("parse their own empty query to the export's default format", () => {
    for (const at of exportEndpoints) expect(parse("", at).format, at.path).toBe(at.defaultFormat)
  })

  it("window on the names they declare, one from and one to", () => {
    for (const at of exportEndpoints) {
      const from = at.params.find((spec) => spec.kind === "from")
      const to = at.params.find((spec) => spec.kind === "to")
      if (from === undefined || to === undefined) {
        expect(at.time, at.path).toBeUndefined()
        continue
      }
      expect(parse(`${from.name}=2025-03-01&${to.name}=2025-03-31`, at).window, at.path).toEqual({
        from: "2025-03-01T00:00:00.000Z",
        to: "2025-04-01T00:00:00.000Z"
      })
    }
  })
})
