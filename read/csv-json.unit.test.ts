import { parse as parseCsv } from "csv-parse/sync"
import { describe, expect, it } from "vitest"
import { boolean, type Column, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import { csvChunks, jsonChunks } from "./formats.ts"
import type { Cells } from "./rows.ts"

async function* batchesOf(batches: ReadonlyArray<ReadonlyArray<Cells>>) {
  for (const batch of batches) yield batch
}

const collect = async (chunks: AsyncIterable<string>) => {
  let out = ""
  for await (const chunk of chunks) out += chunk
  return out
}

const csv = (columns: ReadonlyArray<Column>, batches: ReadonlyArray<ReadonlyArray<Cells>>, header = true, raw = false) =>
  collect(csvChunks(columns, batchesOf(batches), header, raw))

const json = (columns: ReadonlyArray<Column>, batches: ReadonlyArray<ReadonlyArray<Cells>>, open?: string, close?: () => string) =>
  collect(jsonChunks(columns, batchesOf(batches), open, close))

/** Every record of a CSV document, as an RFC 4180 reader sees it. */
const records = (document: string): Array<Array<string>> => parseCsv(document, { relax_column_count: false })

/** A row of each type, formatted as `cellSql` has Postgres write it. */
const columns = [
  text("machine_id"),
  integer("pieces"),
  numeric("oee_pct"),
  date("report_date"),
  timestamp("snapshot_time"),
  boolean("resolved")
]
const row: Cells = ["M-01", 1200, "87.125", "2025-01-15", "2025-01-15T09:30:00.000Z", true]

describe("CSV exports", () => {
  it("write a header row, then one record per row, each ended by CRLF", async () => {
    expect(await csv(columns, [[row]])).toBe(
      "machine_id,pieces,oee_pct,report_date,snapshot_time,resolved\r\nM-01,1200,87.125,2025-01-15,2025-01-15T09:30:00.000Z,true\r\n"
    )
  })

  it("leave the header out when asked to", async () => {
    expect(await csv(columns, [[row]], false)).toBe("M-01,1200,87.125,2025-01-15,2025-01-15T09:30:00.000Z,true\r\n")
  })

  it("are the header alone with no rows, and empty without one", async () => {
    expect(await csv(columns, [])).toBe("machine_id,pieces,oee_pct,report_date,snapshot_time,resolved\r\n")
    expect(await csv(columns, [[], []], false)).toBe("")
  })

  it("quote a field with a comma, a quote or a line break, doubling its quotes, and leave others bare", async () => {
    const values = ["a,b", 'say "hi"', "two\nlines", "cr\rhere", "crlf\r\nhere", "plain text", "it's", ""]
    const document = await csv([text("value")], [values.map((value) => [value])], false)
    expect(document).toBe(`"a,b"\r\n"say ""hi"""\r\n"two\nlines"\r\n"cr\rhere"\r\n"crlf\r\nhere"\r\nplain text\r\nit's\r\n\r\n`)
  })

  it("read back through an RFC 4180 parser to the values written", async () => {
    const values = ['"quoted", with comma', "multi\r\nline\nvalue", "semi;colon", "tab\there", "Zürich 東京 📈", ' "lead', "trail, "]
    const document = await csv([text("value"), integer("n")], [values.map((value, i) => [value, i])])
    expect(records(document)).toEqual([["value", "n"], ...values.map((value, i) => [value, String(i)])])
  })

  it("quote a header name that needs it", async () => {
    expect(records(await csv([text("a,b"), text('c"d')], []))).toEqual([["a,b", 'c"d']])
  })

  it("write nulls as empty fields, in any column and at either end of a record", async () => {
    const document = await csv(
      [text("notes", true), integer("pieces", true), numeric("oee_pct", true), timestamp("end_time", true), boolean("resolved", true)],
      [
        [
          [null, 5, null, null, null],
          [null, null, null, null, false]
        ]
      ],
      false
    )
    expect(document).toBe(",5,,,\r\n,,,,false\r\n")
  })

  it("write booleans as true and false, numbers and decimals as Postgres wrote them", async () => {
    const document = await csv(
      [boolean("b"), integer("i"), numeric("n"), { name: "big", type: "bigint" }],
      [[[false, -7, "0.000100", "9007199254740993"]]],
      false
    )
    expect(document).toBe("false,-7,0.000100,9007199254740993\r\n")
  })

  it("keep rows in order across batches, an empty batch adding nothing", async () => {
    const document = await csv([integer("n")], [[[1], [2]], [], [[3]]])
    expect(document).toBe("n\r\n1\r\n2\r\n3\r\n")
  })

  it("yield one chunk per batch after the header, so a response streams as rows arrive", async () => {
    const chunks: Array<string> = []
    for await (const chunk of csvChunks([integer("n")], batchesOf([[[1], [2]], [[3]]]), true)) chunks.push(chunk)
    expect(chunks).toEqual(["n\r\n", "1\r\n2\r\n", "3\r\n"])
  })

  it("neutralise a formula and still quote it when it needs quoting", async () => {
    const document = await csv([text("value")], [[["=1,2"], ['=HYPERLINK("http://x")'], ["\rcarriage"]]], false)
    expect(document).toBe(`"'=1,2"\r\n"'=HYPERLINK(""http://x"")"\r\n"'\rcarriage"\r\n`)
    expect(records(document)).toEqual([["'=1,2"], ['\'=HYPERLINK("http://x")'], ["'\rcarriage"]])
  })

  it("neutralise formulas in every text column, nullable ones too, and never in dates, instants or decimals", async () => {
    const document = await csv(
      [text("a"), text("b", true), numeric("n"), date("d"), timestamp("t")],
      [[["@SUM(A1)", "+1", "-1.5", "2025-01-15", "2025-01-15T00:00:00.000Z"]]],
      false
    )
    expect(document).toBe("'@SUM(A1),'+1,-1.5,2025-01-15,2025-01-15T00:00:00.000Z\r\n")
  })

  it("write formulas as stored when raw, quoting them only for commas, quotes and line breaks", async () => {
    const document = await csv([text("value")], [[["=1,2"], ["+cmd|' /C calc'!A0"], ["@x"], ["-y"]]], true, true)
    expect(document).toBe(`value\r\n"=1,2"\r\n+cmd|' /C calc'!A0\r\n@x\r\n-y\r\n`)
  })

  it("do not neutralise the header row, whose names the mart declares", async () => {
    expect(await csv([text("-minus")], [])).toBe("-minus\r\n")
  })
})

describe("JSON exports", () => {
  it("are an array of one object per row, members named and ordered as the columns", async () => {
    const document = await json(columns, [[row]])
    expect(document).toBe(
      `[{"machine_id":"M-01","pieces":1200,"oee_pct":87.125,"report_date":"2025-01-15",` +
        `"snapshot_time":"2025-01-15T09:30:00.000Z","resolved":true}]`
    )
    expect(Object.keys((JSON.parse(document) as Array<object>)[0] ?? {})).toEqual(columns.map((column) => column.name))
  })

  it("are an empty array with no rows", async () => {
    expect(await json(columns, [])).toBe("[]")
    expect(await json(columns, [[], []])).toBe("[]")
  })

  it("write decimals and 64-bit integers as exact JSON numbers, digits as Postgres wrote them", async () => {
    const document = await json(
      [numeric("oee_pct"), numeric("tiny"), { name: "big", type: "bigint" }, integer("n")],
      [[["87.500", "0.000000000000000000001", "9007199254740993", -42]]]
    )
    expect(document).toBe(`[{"oee_pct":87.500,"tiny":0.000000000000000000001,"big":9007199254740993,"n":-42}]`)
    expect(JSON.parse(document)).toEqual([{ oee_pct: 87.5, tiny: 1e-21, big: 9007199254740992, n: -42 }])
  })

  it("write booleans as true and false", async () => {
    expect(JSON.parse(await json([boolean("b")], [[[true], [false]]]))).toEqual([{ b: true }, { b: false }])
  })

  it("write nulls as null, whatever the column's type", async () => {
    const nullable: ReadonlyArray<Column> = [
      text("t", true),
      integer("i", true),
      numeric("n", true),
      { name: "big", type: "bigint", nullable: true },
      date("d"),
      timestamp("ts", true),
      boolean("b", true)
    ]
    const document = await json(nullable, [[nullable.map(() => null)]])
    expect(document).toBe(`[{"t":null,"i":null,"n":null,"big":null,"d":null,"ts":null,"b":null}]`)
  })

  it("escape text so that quotes, backslashes, line breaks and control characters read back as written", async () => {
    const values = [
      'say "hi"',
      "back\\slash",
      "two\nlines\r\n",
      "tab\t",
      "nul\u0000 and esc\u001B",
      "</script>",
      "Zürich 東京 📈",
      "\u2028line sep"
    ]
    const document = await json([text("value")], [values.map((value) => [value])])
    expect((JSON.parse(document) as Array<{ value: string }>).map((object) => object.value)).toEqual(values)
  })

  it("keep dates and instants as the strings Postgres formatted", async () => {
    expect(JSON.parse(await json([date("d"), timestamp("ts")], [[["2024-02-29", "2025-01-15T23:59:59.999Z"]]]))).toEqual([
      { d: "2024-02-29", ts: "2025-01-15T23:59:59.999Z" }
    ])
  })

  it("separate rows by one comma across batches, empty batches in between adding nothing", async () => {
    const document = await json([integer("n")], [[], [[1], [2]], [], [[3]], []])
    expect(document).toBe(`[{"n":1},{"n":2},{"n":3}]`)
  })

  it("yield the opening first, a chunk per batch, and the closing last", async () => {
    const chunks: Array<string> = []
    for await (const chunk of jsonChunks([integer("n")], batchesOf([[[1]], [[2], [3]]]))) chunks.push(chunk)
    expect(chunks).toEqual(["[", `{"n":1}`, `,{"n":2},{"n":3}`, "]"])
  })

  it("put the rows between a custom opening and closing", async () => {
    const document = await json([integer("n")], [[[1], [2]]], `{"@odata.context":"x","value":[`, () => `],"@odata.nextLink":"y"}`)
    expect(JSON.parse(document)).toEqual({ "@odata.context": "x", value: [{ n: 1 }, { n: 2 }], "@odata.nextLink": "y" })
  })

  it("ask for the closing only after the last row has streamed, so it can depend on what was read", async () => {
    let read = 0
    async function* counted() {
      for (const batch of [[[1]], [[2], [3]]] as ReadonlyArray<ReadonlyArray<Cells>>) {
        read += batch.length
        yield batch
      }
    }
    const document = await collect(jsonChunks([integer("n")], counted(), `{"value":[`, () => `],"read":${read}}`))
    expect(JSON.parse(document)).toEqual({ value: [{ n: 1 }, { n: 2 }, { n: 3 }], read: 3 })
  })

  it("ignore cells past the columns, such as OData's trailing positions", async () => {
    expect(await json([text("id")], [[["a", "position-a"]]])).toBe(`[{"id":"a"}]`)
  })
})
