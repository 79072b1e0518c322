import { describe, expect, it } from "vitest"
import { boolean, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import { BadParameter } from "./errors.ts"
import { filterSql } from "./odata-filter.ts"

const columns = [
  text("machine_id"),
  text("name", true),
  integer("pieces"),
  numeric("oee_pct"),
  date("report_date"),
  timestamp("snapshot_time"),
  boolean("resolved", true)
]

const compile = (filter: string) => {
  const params: Array<string | number | boolean | null> = []
  return { sql: filterSql(filter, columns, params), params }
}

const rejection = (filter: string): string => {
  try {
    compile(filter)
  } catch (error) {
    if (error instanceof BadParameter) return error.message
    throw error
  }
  throw new Error(`${filter} was accepted`)
}

describe("$filter to SQL", () => {
  it("folds Power BI's RangeStart/RangeEnd pair into a half-open window of bound instants", () => {
    expect(compile("snapshot_time ge 2025-01-01T00:00:00Z and snapshot_time lt 2025-02-01T00:00:00.0000000+00:00")).toEqual({
      sql: `"snapshot_time" >= $1::timestamptz AND "snapshot_time" < $2::timestamptz`,
      params: ["2025-01-01T00:00:00Z", "2025-02-01T00:00:00.000000+00:00"]
    })
  })

  it("binds every literal, quotes included, and never writes one into the SQL text", () => {
    const { sql, params } = compile("machine_id eq 'M-01''; DROP TABLE x; --'")
    expect(sql).toBe(`"machine_id" = $1::text`)
    expect(params).toEqual(["M-01'; DROP TABLE x; --"])
  })

  it("gives and precedence over or, keeps parentheses, and turns a literal on the left around", () => {
    expect(compile("pieces gt 5 or 10 ge pieces and not (oee_pct lt 50.5)").sql).toBe(
      `("pieces" > $1::integer) OR ("pieces" <= $2::integer AND NOT coalesce((("oee_pct" < $3::numeric)), false))`
    )
  })

  it("keeps nulls the way OData does: eq null, ne null, ne a value", () => {
    expect(compile("name eq null").sql).toBe(`"name" IS NULL`)
    expect(compile("name ne null").sql).toBe(`"name" IS NOT NULL`)
    expect(compile("name ne 'x'").sql).toBe(`"name" IS DISTINCT FROM $1::text`)
  })

  it("supports contains, startswith and endswith on text, with or without eq true/false", () => {
    expect(compile("contains(name,'ress')").sql).toBe(`(strpos("name", $1::text) > 0)`)
    expect(compile("startswith(machine_id, 'M-') eq false").sql).toBe(`NOT (starts_with("machine_id", $1::text))`)
    expect(compile("endswith(name,'1') and resolved eq true").sql).toBe(
      `(right("name", length($1::text)) = $1::text) AND "resolved" = $2::boolean`
    )
  })

  it("compares a date column with a date and an instant column with either", () => {
    expect(compile("report_date ge 2025-01-15").sql).toBe(`"report_date" >= $1::date`)
    expect(compile("snapshot_time lt 2025-01-16").sql).toBe(`"snapshot_time" < $1::timestamptz`)
  })

  it("names what is wrong and what is accepted", () => {
    expect(rejection("nope eq 1")).toMatch(/unknown property "nope"; properties: machine_id, name/)
    expect(rejection("pieces eq 'five'")).toMatch(/pieces is of type integer; compare it with a whole number/)
    expect(rejection("pieces eq 2147483648")).toMatch(/from -2147483648 to 2147483647/)
    expect(rejection("snapshot_time ge 'yesterday'")).toMatch(/compare it with a date \(2025-01-15\) or an instant/)
    expect(rejection("report_date ge 2025-02-30")).toMatch(/is not a date/)
    expect(rejection("machine_id eq 'M-01")).toMatch(/unterminated string/)
    expect(rejection("machine_id eq 'M-01' and")).toMatch(/expected a property or a literal but found the end of the filter/)
    expect(rejection("machine_id eq 'a' 'b'")).toMatch(/unexpected a literal at position 19/)
    expect(rejection("tolower(name) eq 'x'")).toMatch(/function tolower\(\) is not supported/)
    expect(rejection("contains(pieces,'1')")).toMatch(/contains\(\) works on text properties/)
    expect(rejection("machine_id eq name")).toMatch(/compare a property with a literal/)
    expect(rejection("pieces gt null")).toMatch(/null compares only with eq or ne/)
    expect(rejection("1 eq 1; DELETE FROM x")).toMatch(/unexpected ";"/)
    expect(rejection("(".repeat(40) + "pieces eq 1" + ")".repeat(40))).toMatch(/nested deeper than 32 levels/)
  })
})
