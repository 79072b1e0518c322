import { describe, expect, it } from "vitest"
import { DAX_SUBSET, type DaxTable, parseDax, resultRow, runDax } from "./dax.ts"

const fact: DaxTable = {
  name: "Fact Event",
  columns: [
    { name: "event_id", dataType: "String" },
    { name: "date_key", dataType: "Int64" },
    { name: "value", dataType: "Double" },
    { name: "amount", dataType: "Decimal" },
    { name: "occurred_at", dataType: "DateTime" },
    { name: "counted", dataType: "Boolean" },
    { name: "odd]name", dataType: "Int64" }
  ],
  rows: [
    { event_id: "a", date_key: 20250115, value: 1.5, amount: 0.1, occurred_at: "2025-01-15T10:00:00.000Z", counted: true, "odd]name": 1 },
    { event_id: "B", date_key: 20250116, value: null, amount: 0.2, occurred_at: "2025-01-16T12:00:00+02:00" },
    { event_id: "b", date_key: 20250114, value: -2, amount: 0.00004, occurred_at: "2025-01-14T00:00:00.250Z", "odd]name": 1 },
    { event_id: null, date_key: 20250116 }
  ]
}
const empty: DaxTable = { name: "Empty", columns: fact.columns, rows: [] }
const quoted: DaxTable = { name: "It's", columns: [{ name: "n", dataType: "Int64" }], rows: [{ n: 4 }, { n: 5 }] }
const tables = [fact, empty, quoted]

/** The row a query gives, with nulls kept. */
const rowOf = (query: string, over: ReadonlyArray<DaxTable> = tables) => {
  const outcome = runDax(query, over)
  if (!outcome.ok) throw new Error(outcome.message)
  return resultRow(outcome.value, true)
}

/** The message a query is refused with. */
const refusalOf = (query: string) => {
  const outcome = runDax(query, tables)
  if (outcome.ok) throw new Error(`expected ${query} to be refused`)
  return outcome.message
}

describe("the emulator's DAX subset", () => {
  it("evaluates ROW with COUNTROWS, MAX, MIN, SUM and DISTINCTCOUNT, each under its name in square brackets", () => {
    expect(
      rowOf(`EVALUATE ROW("rows", COUNTROWS('Fact Event'), "max", MAX('Fact Event'[date_key]), "min", MIN('Fact Event'[value]),
        "sum", SUM('Fact Event'[value]), "ids", DISTINCTCOUNT('Fact Event'[date_key]))`)
    ).toEqual({ "[rows]": 4, "[max]": 20250116, "[min]": -2, "[sum]": -0.5, "[ids]": 3 })
  })

  it("takes keywords and names in any case, bare table names, escaped quotes and brackets, and whitespace anywhere", () => {
    expect(rowOf(`evaluate\n  row ( "n" , countrows ( 'IT''S' ) , "m",max('it''s'[n]) )`)).toEqual({ "[n]": 2, "[m]": 5 })
    expect(rowOf(`EVALUATE ROW("n", COUNTROWS('It''s'), "m", Max ( 'It''s' [N] ))`)).toEqual({ "[n]": 2, "[m]": 5 })
    expect(rowOf(`EVALUATE ROW("n", SUM(Empty[date_key]), "say ""hi""", COUNTROWS(empty))`)).toEqual({ "[n]": null, '[say "hi"]': null })
    expect(rowOf(`EVALUATE ROW("odd", SUM('Fact Event'[odd]]name]))`)).toEqual({ "[odd]": 2 })
  })

  it("answers BLANK (null) for COUNTROWS, MAX, MIN, SUM and DISTINCTCOUNT of an empty table", () => {
    expect(
      rowOf(`EVALUATE ROW("c", COUNTROWS(Empty), "max", MAX(Empty[value]), "min", MIN(Empty[occurred_at]), "s", SUM(Empty[date_key]),
        "d", DISTINCTCOUNT(Empty[event_id]))`)
    ).toEqual({ "[c]": null, "[max]": null, "[min]": null, "[s]": null, "[d]": null })
  })

  it("counts BLANK as one value in DISTINCTCOUNT, and text differing only in case as one value", () => {
    // event_id holds "a", "B", "b" and a null: "B" and "b" are one value, the blank is another.
    expect(rowOf(`EVALUATE ROW("d", DISTINCTCOUNT('Fact Event'[event_id]), "c", DISTINCTCOUNT('Fact Event'[counted]))`)).toEqual({
      "[d]": 3,
      "[c]": 2
    })
  })

  it("skips blanks in MAX, MIN and SUM, orders dates and text as DAX does, and keeps Decimal at 4 places", () => {
    expect(
      rowOf(`EVALUATE ROW("last", MAX('Fact Event'[occurred_at]), "first", MIN('Fact Event'[occurred_at]), "top", MAX('Fact Event'[event_id]),
        "amount", SUM('Fact Event'[amount]), "v", MAX('Fact Event'[value]))`)
    ).toEqual({ "[last]": "2025-01-16T10:00:00", "[first]": "2025-01-14T00:00:00.250", "[top]": "B", "[amount]": 0.3, "[v]": 1.5 })
  })

  it("leaves a BLANK cell out of the row unless includeNulls is set", () => {
    const outcome = runDax(`EVALUATE ROW("n", COUNTROWS(Empty), "m", COUNTROWS('It''s'))`, tables)
    expect(outcome.ok && [resultRow(outcome.value, false), resultRow(outcome.value, true)]).toEqual([
      { "[m]": 2 },
      { "[n]": null, "[m]": 2 }
    ])
  })

  it("names an unknown table or column, with its place in the query", () => {
    expect(refusalOf(`EVALUATE ROW("n", COUNTROWS('Nope'))`)).toBe("Query (1, 29) Cannot find table 'Nope'.")
    expect(refusalOf(`EVALUATE\nROW("n", MAX('Fact Event'[colour]))`)).toBe(
      "Query (2, 26) Column 'colour' in table 'Fact Event' cannot be found or may not be used in this expression."
    )
  })

  it("refuses types the functions do not take, naming the column", () => {
    expect(refusalOf(`EVALUATE ROW("x", MAX('Fact Event'[counted]))`)).toMatch(
      /^Query \(1, 19\) The function MAX cannot work with values of type Boolean: column 'Fact Event'\[counted\]/
    )
    expect(refusalOf(`EVALUATE ROW("x", SUM('Fact Event'[event_id]))`)).toMatch(/SUM .* cannot work with values of type String/)
    expect(refusalOf(`EVALUATE ROW("x", SUM('Fact Event'[occurred_at]))`)).toMatch(/SUM adds Int64, Double and Decimal columns only/)
  })

  it("refuses anything outside the subset with a message that lists the subset and says what it found", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["EVALUATE 'Fact Event'", "Query (1, 10) The emulator supports only this DAX subset"],
      ["EVALUATE TOPN(10, 'Fact Event')", "Expected ROW, found 'TOPN'"],
      ['DEFINE MEASURE x = 1 EVALUATE ROW("x", 1)', "Expected EVALUATE, found 'DEFINE'"],
      ['EVALUATE ROW("x", 1)', "Expected COUNTROWS, MAX, MIN, SUM or DISTINCTCOUNT, found '1'"],
      ['EVALUATE ROW("x", AVERAGE(T[c]))', "found 'AVERAGE'"],
      ['EVALUATE ROW("x", MAX([c]))', "Expected a table name ('Table' or Table), found the column [c]"],
      ['EVALUATE ROW("x", MAX(T))', "Expected a column name in [ ] after the table, found ')'"],
      ["EVALUATE ROW(x, COUNTROWS(T))", "Expected a column name in double quotes (\"name\"), found 'x'"],
      ['EVALUATE ROW("x", COUNTROWS(T)) EVALUATE ROW("y", COUNTROWS(T))', "Expected the end of the query, found 'EVALUATE'"],
      ['EVALUATE ROW("x", COUNTROWS(T)', "found the end of the query"],
      ["", "Expected EVALUATE, found the end of the query"]
    ]
    for (const [query, message] of cases) {
      const refused = refusalOf(query)
      expect(refused, query).toContain(message)
      expect(refused, query).toContain(DAX_SUBSET)
    }
  })

  it("refuses an unclosed literal, an empty name and a name used twice", () => {
    expect(refusalOf(`EVALUATE ROW("x, COUNTROWS(T))`)).toBe('Query (1, 14) The text that starts here is not closed with ".')
    expect(refusalOf(`EVALUATE ROW("x", COUNTROWS('T))`)).toBe("Query (1, 29) The quoted table name that starts here is not closed with '.")
    expect(refusalOf(`EVALUATE ROW("x", MAX(T[c))`)).toBe("Query (1, 24) The column name that starts here is not closed with ].")
    expect(refusalOf(`EVALUATE ROW("", COUNTROWS(T))`)).toBe("Query (1, 14) The name of a column created by ROW cannot be empty.")
    expect(refusalOf(`EVALUATE ROW("x", COUNTROWS(T), "X", COUNTROWS(T))`)).toBe(
      'Query (1, 33) The column name "X" is used more than once in ROW.'
    )
  })

  it("parses into the named expressions in order, with where each name stands", () => {
    const parsed = parseDax(`EVALUATE ROW("a", COUNTROWS(T), "b", DISTINCTCOUNT('U V'[w]))`)
    expect(parsed).toEqual({
      ok: true,
      value: {
        text: expect.any(String),
        columns: [
          { name: "a", expression: { function: "COUNTROWS", at: 18, table: { table: "T", at: 28 } } },
          { name: "b", expression: { function: "DISTINCTCOUNT", at: 37, column: { table: "U V", at: 51, column: "w", columnAt: 56 } } }
        ]
      }
    })
  })
})
