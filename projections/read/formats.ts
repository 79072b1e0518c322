import { PassThrough } from "node:stream"
import { once } from "node:events"
import { stringify } from "csv-stringify/sync"
import ExcelJS from "exceljs"
import type { Column } from "../table.ts"
import type { Cells } from "./rows.ts"

export type Format = "csv" | "json" | "xlsx"

export const contentTypes: Readonly<Record<Format, string>> = {
  csv: "text/csv; charset=utf-8",
  json: "application/json; charset=utf-8",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
}

type Batches = AsyncIterable<ReadonlyArray<Cells>>

const encoder = new TextEncoder()

/**
 * A byte stream pulled chunk by chunk from `chunks`: nothing is produced ahead of what the client
 * reads, and a client that goes away cancels the generator (and with it the database cursor).
 */
export const pullStream = (chunks: AsyncIterable<string | Uint8Array>): ReadableStream<Uint8Array> => {
  const iterator = chunks[Symbol.asyncIterator]()
  return new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        const next = await iterator.next()
        if (next.done === true) controller.close()
        else controller.enqueue(typeof next.value === "string" ? encoder.encode(next.value) : next.value)
      },
      cancel: async () => {
        await iterator.return?.()
      }
    },
    { highWaterMark: 0 }
  )
}

/** RFC 4180 CSV: a header row of the column names unless `header` is false, nulls as empty fields. */
export async function* csvChunks(columns: ReadonlyArray<Column>, batches: Batches, header: boolean): AsyncGenerator<string> {
  if (header) yield stringify([columns.map((column) => column.name)], { record_delimiter: "\r\n" })
  for await (const rows of batches) yield stringify(rows as Array<Array<unknown>>, { record_delimiter: "\r\n", cast: { boolean: (value) => (value ? "true" : "false") } })
}

/** Encoders of one row's cells as JSON members; decimals and 64-bit integers are written as exact JSON numbers. */
const jsonMembers = (columns: ReadonlyArray<Column>): ((cells: Cells) => string) => {
  const names = columns.map((column) => `${JSON.stringify(column.name)}:`)
  const encoders = columns.map((column): ((value: unknown) => string) => {
    switch (column.type) {
      case "numeric":
      case "bigint":
      case "integer":
        return (value) => String(value)
      case "boolean":
        return (value) => (value === true ? "true" : "false")
      default:
        return (value) => JSON.stringify(value)
    }
  })
  return (cells) => {
    let out = ""
    for (let i = 0; i < names.length; i++) {
      const value = cells[i]
      out += `${i === 0 ? "" : ","}${names[i]}${value === null || value === undefined ? "null" : (encoders[i] as (value: unknown) => string)(value)}`
    }
    return out
  }
}

/**
 * A JSON document whose array of row objects sits between `open` and `close`: `[...]` for the
 * REST exports, `{"@odata.context":…,"value":[…],"@odata.nextLink":…}` for OData. `close` is asked
 * for after the last row, so it can depend on what was streamed (the next page's link).
 */
export async function* jsonChunks(columns: ReadonlyArray<Column>, batches: Batches, open = "[", close: () => string = () => "]"): AsyncGenerator<string> {
  const members = jsonMembers(columns)
  let first = true
  yield open
  for await (const rows of batches) {
    let chunk = ""
    for (const cells of rows) {
      chunk += `${first ? "" : ","}{${members(cells)}}`
      first = false
    }
    yield chunk
  }
  yield close()
}

const excelFormats: Partial<Record<Column["type"], string>> = {
  integer: "0",
  bigint: "0",
  numeric: "#,##0.00##",
  date: "yyyy-mm-dd",
  timestamptz: "yyyy-mm-dd hh:mm:ss"
}

const excelValue = (column: Column, value: unknown): ExcelJS.CellValue => {
  if (value === null || value === undefined) return null
  switch (column.type) {
    case "integer":
    case "bigint":
    case "numeric":
      return Number(value)
    case "date":
    case "timestamptz":
      return new Date(value as string)
    case "boolean":
      return value as boolean
    default:
      return value as string
  }
}

/**
 * An XLSX workbook of one sheet, streamed: numbers as numbers, dates and instants as Excel dates
 * (instants in UTC), a bold, filled, frozen header row with filters. Rows are committed as they
 * come and the writer waits for the client between batches, so memory stays flat.
 */
export async function* xlsxChunks(columns: ReadonlyArray<Column>, batches: Batches, sheetName: string): AsyncGenerator<Uint8Array> {
  const out = new PassThrough({ highWaterMark: 1 << 20 })
  const workbook = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: out, useStyles: true, useSharedStrings: false })
  const sheet = workbook.addWorksheet(sheetName.slice(0, 31), { views: [{ state: "frozen", ySplit: 1 }] })
  sheet.columns = columns.map((column) => ({
    header: column.name,
    key: column.name,
    width: Math.max(12, column.name.length + 2, column.type === "timestamptz" ? 20 : 0),
    ...(excelFormats[column.type] === undefined ? {} : { style: { numFmt: excelFormats[column.type] as string } })
  }))
  sheet.autoFilter = { from: { row: 1, column: 1 }, to: { row: 1, column: columns.length } }
  const header = sheet.getRow(1)
  header.font = { bold: true, color: { argb: "FFFFFFFF" } }
  header.fill = { type: "pattern", pattern: "solid", fgColor: { argb: "FF1F4E79" } }
  header.alignment = { vertical: "middle" }
  header.commit()
  let cancelled = false
  const written = (async () => {
    for await (const rows of batches) {
      for (const cells of rows) sheet.addRow(columns.map((column, i) => excelValue(column, cells[i]))).commit()
      if (out.writableNeedDrain) await Promise.race([once(out, "drain"), once(out, "close")])
      if (cancelled) return
    }
    sheet.commit()
    await workbook.commit()
  })()
  written.catch((error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))))
  try {
    for await (const chunk of out) yield chunk as Uint8Array
    await written
  } finally {
    cancelled = true
    out.destroy()
  }
}
