import fc from "fast-check"
import { strFromU8, unzipSync } from "fflate"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createDatabase, type PostgresServer, startPostgres } from "../infra/postgres/database.ts"
import { quoteIdent } from "../platform/sql.ts"
import { boolean, type Column, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import { readerConnection } from "./cli.ts"
import { openCopy } from "./copy.ts"
import { csvChunks, csvFromCopy, jsonChunks, jsonFromCopy } from "./formats.ts"
import { cellSql, csvCellSql, openRows } from "./rows.ts"
import { xlsxChunks, xlsxFromCopy } from "./xlsx.ts"

let pg: PostgresServer
let database: { url: string; drop: () => Promise<void> }
let sql: postgres.Sql

const columns: ReadonlyArray<Column> = [
  integer("n"),
  text("label", true),
  numeric("amount", true),
  { name: "big", type: "bigint", nullable: true },
  date("day"),
  timestamp("at", true),
  boolean("ok", true),
  text("notes", true)
]
const ddl = `CREATE TABLE cells (n integer PRIMARY KEY, label text, amount numeric, big bigint, day date NOT NULL, at timestamptz, ok boolean, notes text)`

/** Text every encoder must treat with care: quotes, separators, escapes, control characters, formulas, XML, space, non-ASCII. */
const awkward = [
  "",
  "plain",
  'say "hi", twice',
  "two\nlines\r\nand\rcr",
  "tab\there",
  "back\\slash \\N \\t",
  "\\N",
  "=1+1",
  "+cmd|' /C calc'!A0",
  "-2",
  "@SUM(A1)",
  "\tlead tab",
  "\rlead cr",
  "'quoted",
  '<b>Tom & "Jerry"</b>',
  "bell\u0007 esc\u001B vt\u000B ff\u000C bs\u0008",
  "\uFFFE\uFFFF",
  "  padded  ",
  "\u00A0nbsp",
  "ideographic\u3000",
  "Zürich 東京 📈",
  "x".repeat(40_000),
  `${"y".repeat(32_766)}📈`
]

beforeAll(async () => {
  pg = await startPostgres()
  database = await createDatabase(pg.url)
  sql = postgres(database.url, { ...readerConnection, connection: { TimeZone: "UTC", jit: false }, max: 2 })
  await sql.unsafe(ddl)
}, 120_000)

afterAll(async () => {
  await sql?.end({ timeout: 5 })
  await database?.drop()
  await pg?.dispose()
})

const fill = async (labels: ReadonlyArray<string>) => {
  await sql`TRUNCATE cells`
  if (labels.length === 0) return
  await sql`INSERT INTO cells ${sql(
    labels.map((label, n) => ({
      n,
      label: n % 7 === 3 ? null : label,
      amount: n % 5 === 0 ? null : `${n % 2 === 0 ? "-" : ""}${n}.${"0".repeat(n % 4)}5`,
      big: n % 6 === 0 ? null : `${9007199254740993n + BigInt(n)}`,
      day: new Date(Date.UTC(2024, 1, 29 + (n % 400))).toISOString().slice(0, 10),
      at: n % 4 === 0 ? null : new Date(Date.UTC(2025, 0, 15, 9, 30, 0, (n * 86_399_999) % 1_000_000_000)).toISOString(),
      ok: n % 3 === 0 ? null : n % 2 === 0,
      notes: labels[labels.length - 1 - n] ?? null
    }))
  )}`
}

const select = (cell: (column: Column, expression: string) => string) =>
  `SELECT ${columns.map((column) => `${cell(column, quoteIdent(column.name))} AS ${quoteIdent(column.name)}`).join(", ")} FROM cells ORDER BY n`

const collect = async (chunks: AsyncIterable<string | Uint8Array>) => {
  const parts: Array<Buffer> = []
  for await (const chunk of chunks) parts.push(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk))
  return Buffer.concat(parts)
}

/** What the encoders of rows in memory write, from a cursor over the query of `cellSql`. */
const fromCursor = async (encode: (batches: AsyncIterable<ReadonlyArray<ReadonlyArray<never>>>) => AsyncIterable<string | Uint8Array>) => {
  const rows = await openRows(sql, { text: select(cellSql), params: [], columns }, undefined, 7)
  return collect(encode(rows.batches as never))
}

/** What the COPY encoders write from `statement`. */
const fromCopy = async (statement: string, encode: (chunks: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>) => {
  const copy = await openCopy(sql, statement)
  return collect(encode(copy.chunks))
}

const sheetXml = (file: Buffer) => strFromU8(unzipSync(new Uint8Array(file))["xl/worksheets/sheet1.xml"] as Uint8Array)

const expectSameEverywhere = async () => {
  for (const raw of [false, true])
    for (const header of [true, false])
      expect(
        (
          await fromCopy(`COPY (${select((c, e) => csvCellSql(c, e, raw))}) TO STDOUT WITH (FORMAT csv)`, (chunks) =>
            csvFromCopy(columns, chunks, header)
          )
        ).toString()
      ).toBe((await fromCursor((batches) => csvChunks(columns, batches, header, raw))).toString())
  const textCells = select((column, expression) => (column.type === "text" ? `(${expression})::text` : cellSql(column, expression)))
  expect((await fromCopy(`COPY (${textCells}) TO STDOUT`, (chunks) => jsonFromCopy(columns, chunks))).toString()).toBe(
    (await fromCursor((batches) => jsonChunks(columns, batches))).toString()
  )
  expect(sheetXml(await fromCopy(`COPY (${textCells}) TO STDOUT`, (chunks) => xlsxFromCopy(columns, chunks, "S")))).toBe(
    sheetXml(await fromCursor((batches) => xlsxChunks(columns, batches, "S")))
  )
}

describe("exports from COPY", () => {
  it("write CSV, JSON and XLSX byte for byte as the encoders of rows in memory do, awkward text included", async () => {
    await fill(awkward)
    await expectSameEverywhere()
  }, 60_000)

  it("agree with them on any text", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ unit: "grapheme", maxLength: 40 }).map((value) => value.replaceAll("\u0000", "")),
          { maxLength: 30 }
        ),
        async (labels) => {
          await fill(labels)
          await expectSameEverywhere()
        }
      ),
      { numRuns: 40 }
    )
  }, 120_000)

  it("leave the connection ready for its next query when closed early", async () => {
    await sql`TRUNCATE cells`
    await sql`INSERT INTO cells (n, label, day) SELECT g, 'row ' || g, '2025-01-15' FROM generate_series(1, 100000) g`
    const reserved = await sql.reserve()
    try {
      const copy = await openCopy(reserved, `COPY (${select(cellSql)}) TO STDOUT`)
      await copy.chunks[Symbol.asyncIterator]().next()
      await copy.close()
      expect((await reserved`SELECT 1 AS one`)[0]?.one).toBe(1)
    } finally {
      reserved.release()
    }
  })
})
