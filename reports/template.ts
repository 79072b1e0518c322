import { text } from "../projections/table.ts"
import { xlsxChunks } from "../read/xlsx.ts"
import { SHEET_COLUMNS } from "./import.ts"

/** The template's example rows: a numeric filter with a default, and a text one without. */
const EXAMPLE: ReadonlyArray<ReadonlyArray<string | null>> = [
  ["sales", "Year", "Calendar/Year", "2023;2024", "2024"],
  ["sales", "Region", "Store/Region", "North;South;East;West", null]
]

const csvCell = (value: string | null) => (value === null ? "" : /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value)

/** A filter sheet to start from: the header row and two example rows, as a `filters` sheet of a workbook or as CSV. */
export const filterTemplate = async (format: "xlsx" | "csv"): Promise<Uint8Array> => {
  if (format === "csv")
    return new TextEncoder().encode([SHEET_COLUMNS.join(","), ...EXAMPLE.map((row) => row.map(csvCell).join(","))].join("\r\n") + "\r\n")
  const parts: Array<Uint8Array> = []
  const rows = (async function* () {
    yield EXAMPLE
  })()
  for await (const part of xlsxChunks(
    SHEET_COLUMNS.map((name) => text(name, true)),
    rows,
    "filters"
  ))
    parts.push(part)
  return Buffer.concat(parts)
}
