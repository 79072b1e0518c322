import { text } from "../projections/table.ts"
import { xlsxChunks } from "../read/xlsx.ts"
import { SHEET_COLUMNS } from "./import.ts"

export type SheetRow = ReadonlyArray<string | null>

/** The template's example rows: a numeric filter with a default, and a text one without. */
const EXAMPLE: ReadonlyArray<SheetRow> = [
  ["sales", "Year", "Calendar/Year", "2023;2024", "2024"],
  ["sales", "Region", "Store/Region", "North;South;East;West", null]
]

const csvCell = (value: string | null) => (value === null ? "" : /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value)

/** A filter sheet of `rows` under the header row: a workbook with one `filters` sheet, or CSV. */
export const filterSheet = async (rows: ReadonlyArray<SheetRow>, format: "xlsx" | "csv"): Promise<Uint8Array> => {
  if (format === "csv")
    return new TextEncoder().encode([SHEET_COLUMNS.join(","), ...rows.map((row) => row.map(csvCell).join(","))].join("\r\n") + "\r\n")
  const parts: Array<Uint8Array> = []
  const batches = (async function* () {
    yield rows
  })()
  for await (const part of xlsxChunks(
    SHEET_COLUMNS.map((name) => text(name, true)),
    batches,
    "filters"
  ))
    parts.push(part)
  return Buffer.concat(parts)
}

/** A filter sheet to start from: the header row and two example rows. */
export const filterTemplate = (format: "xlsx" | "csv"): Promise<Uint8Array> => filterSheet(EXAMPLE, format)
