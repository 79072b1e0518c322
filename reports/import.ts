import { parse } from "csv-parse/sync"
import readXlsxFile from "read-excel-file/node"
import { decodeIssues } from "../contracts/contract.ts"
import { FilterSheetImported, FiltersImported, type FilterValue, type ReportFilter } from "../contracts/reports.ts"
import { columnProblem, MAX_EXPRESSIONS } from "./filter-url.ts"

/**
 * Filter sheets (seed 003's "Excel-driven filter management"): one row per filter, read from XLSX
 * or CSV and checked whole. Every problem is named by sheet, row (as Excel numbers them), column
 * and value, and a sheet with any problem imports nothing.
 */

export interface SheetProblem {
  readonly sheet: string
  readonly row: number
  readonly column: string
  readonly value: string
  readonly message: string
}

export interface ImportedReport {
  readonly report_id: string
  readonly file_name: string
  readonly filters: ReadonlyArray<ReportFilter>
}

export type ImportResult =
  | { readonly ok: true; readonly reports: ReadonlyArray<ImportedReport> }
  | { readonly ok: false; readonly problems: ReadonlyArray<SheetProblem> }

export const SHEET_COLUMNS = ["report_id", "filter_label", "column_name", "allowed_values", "default"] as const
const REQUIRED = ["filter_label", "column_name", "allowed_values"] as const
const MAX_CELL = 200

type Cell = string | number | boolean | null

/** One cell's values: `;`-separated (`\;` a semicolon in a value), trimmed, typed. */
export const splitValues = (cell: Cell): ReadonlyArray<FilterValue> => {
  if (cell === null) return []
  if (typeof cell !== "string") return [cell]
  const parts: Array<string> = []
  let current = ""
  for (let i = 0; i < cell.length; i++) {
    if (cell[i] === "\\" && cell[i + 1] === ";") {
      current += ";"
      i++
    } else if (cell[i] === ";") {
      parts.push(current)
      current = ""
    } else current += cell[i]
  }
  parts.push(current)
  return typed(parts.map((part) => part.trim()).filter((part) => part !== ""))
}

/** Values as numbers when every one reads as a number, booleans when every one is TRUE or FALSE, else text. */
const typed = (values: ReadonlyArray<string>): ReadonlyArray<FilterValue> => {
  if (values.length > 0 && values.every((value) => /^-?\d+(\.\d+)?$/.test(value) && Number.isFinite(Number(value))))
    return values.map(Number)
  if (values.length > 0 && values.every((value) => /^(true|false)$/i.test(value)))
    return values.map((value) => value.toLowerCase() === "true")
  return values
}

const text = (cell: Cell): string => (cell === null ? "" : String(cell))

const isXlsx = (bytes: Uint8Array) => bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04

/** The sheet's name and rows as cells, or the problem that keeps it from being read at all. */
const readRows = async (input: {
  readonly bytes: Uint8Array
  readonly fileName: string
}): Promise<{ readonly sheet: string; readonly rows: ReadonlyArray<ReadonlyArray<Cell>>; readonly fileName: string } | SheetProblem> => {
  const lower = input.fileName.toLowerCase()
  const refuse = (message: string): SheetProblem => ({ sheet: input.fileName, row: 0, column: "", value: "", message })
  if (lower.endsWith(".xlsx")) {
    if (!isXlsx(input.bytes))
      return refuse("the file is named .xlsx but is not an Excel workbook (save it as .xlsx from Excel, or as .csv)")
    try {
      const sheets = await readXlsxFile(Buffer.from(input.bytes))
      const chosen = sheets.find((one) => one.sheet.toLowerCase() === "filters") ?? sheets[0]
      if (chosen === undefined) return refuse("the workbook has no sheet")
      const rows = chosen.data.map((row) =>
        row.map((cell): Cell =>
          cell === null || cell === undefined ? null : cell instanceof Date ? cell.toISOString().slice(0, 10) : (cell as Cell)
        )
      )
      return { sheet: chosen.sheet, rows, fileName: `${input.fileName} (sheet ${chosen.sheet})` }
    } catch (error) {
      return refuse(`the workbook cannot be read (${error instanceof Error ? error.message : String(error)}); is it damaged?`)
    }
  }
  if (lower.endsWith(".csv")) {
    if (isXlsx(input.bytes)) return refuse("the file is named .csv but is an Excel workbook: name it .xlsx")
    try {
      const rows = parse(Buffer.from(input.bytes), { bom: true, relax_column_count: true, skip_empty_lines: false }) as Array<Array<string>>
      return { sheet: input.fileName, rows: rows.map((row) => row.map((cell) => (cell === "" ? null : cell))), fileName: input.fileName }
    } catch (error) {
      return refuse(`the CSV cannot be read: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  return refuse(
    lower.endsWith(".xls")
      ? "an .xls (Excel 97–2003) workbook cannot be read: save it as .xlsx"
      : "a filter sheet is an .xlsx workbook or a .csv file; name the file accordingly"
  )
}

/** Excel's column letters of the 0-based index `i`: A, B, …, Z, AA. */
const letters = (i: number): string => (i < 26 ? String.fromCharCode(65 + i) : letters(Math.floor(i / 26) - 1) + letters(i % 26))

/**
 * Reads and checks a filter sheet. `reportId` (the CLI's `--report`, the admin page's report) is the
 * report of rows without a `report_id` column; every report must be one of `knownReports`.
 */
export const importFilterSheet = async (
  input: { readonly bytes: Uint8Array; readonly fileName: string },
  options: { readonly reportId?: string; readonly knownReports: ReadonlyArray<string> }
): Promise<ImportResult> => {
  const read = await readRows(input)
  if ("message" in read) return { ok: false, problems: [read] }
  const { sheet, rows } = read
  const problems: Array<SheetProblem> = []
  const problem = (row: number, column: string, value: Cell, message: string) =>
    problems.push({ sheet, row, column, value: text(value), message })
  const header = (rows[0] ?? []).map((cell) => text(cell).trim().toLowerCase())
  const at = new Map<string, number>()
  header.forEach((name, i) => {
    if (name === "") return
    if (!(SHEET_COLUMNS as ReadonlyArray<string>).includes(name))
      problem(1, `${letters(i)} (${name})`, rows[0]?.[i] ?? null, `unknown column "${name}": the columns are ${SHEET_COLUMNS.join(", ")}`)
    else if (at.has(name)) problem(1, `${letters(i)} (${name})`, rows[0]?.[i] ?? null, `the column ${name} appears twice`)
    else at.set(name, i)
  })
  for (const name of REQUIRED)
    if (!at.has(name)) problem(1, name, null, `the header row has no ${name} column (the columns are ${SHEET_COLUMNS.join(", ")})`)
  if (!at.has("report_id") && options.reportId === undefined)
    problem(1, "report_id", null, "the sheet has no report_id column: add one, or name the report (--report, or the admin page's report)")
  if (problems.length > 0) return { ok: false, problems }

  const cellOf = (row: ReadonlyArray<Cell>, name: string): Cell => {
    const index = at.get(name)
    return index === undefined ? null : (row[index] ?? null)
  }
  const where = (name: string) => `${letters(at.get(name) as number)} (${name})`
  const byReport = new Map<string, Array<{ readonly row: number; readonly filter: ReportFilter }>>()
  const seen = new Map<string, number>()
  let dataRows = 0
  rows.slice(1).forEach((row, offset) => {
    const number = offset + 2
    if (row.every((cell) => cell === null || text(cell).trim() === "")) return
    dataRows++
    for (const name of SHEET_COLUMNS) {
      const cell = cellOf(row, name)
      if (at.has(name) && text(cell).length > MAX_CELL)
        problem(number, where(name), text(cell).slice(0, 40) + "…", `the cell is ${text(cell).length} characters long; at most ${MAX_CELL}`)
    }
    const reportCell = text(cellOf(row, "report_id")).trim()
    const reportId = reportCell === "" ? options.reportId : reportCell
    if (reportId === undefined) problem(number, where("report_id"), null, "the report_id is empty")
    else if (options.reportId !== undefined && reportCell !== "" && reportCell !== options.reportId)
      problem(
        number,
        where("report_id"),
        reportCell,
        `the row is for report ${reportCell}, but the sheet is being imported for ${options.reportId}`
      )
    else if (!options.knownReports.includes(reportId))
      problem(
        number,
        at.has("report_id") ? where("report_id") : "report_id",
        reportId,
        `no report ${JSON.stringify(reportId)} is registered (registered: ${options.knownReports.join(", ") || "none"}); register it first`
      )
    const label = text(cellOf(row, "filter_label")).trim()
    const column = text(cellOf(row, "column_name")).trim()
    const allowed = splitValues(cellOf(row, "allowed_values"))
    if (label === "") problem(number, where("filter_label"), null, "the filter_label is empty")
    if (column === "") problem(number, where("column_name"), null, "the column_name is empty")
    else {
      const why = columnProblem(column)
      if (why !== undefined) problem(number, where("column_name"), column, `Power BI's URL filter cannot address this column: it ${why}`)
    }
    if (allowed.length === 0)
      problem(number, where("allowed_values"), cellOf(row, "allowed_values"), "no allowed values: list them separated by ;")
    const defaultCell = cellOf(row, "default")
    const [fallback, ...more] = splitValues(typeof defaultCell === "string" ? defaultCell.replaceAll(";", "\\;") : defaultCell)
    const asAllowed =
      fallback === undefined ? null : (allowed.find((value) => value === fallback || String(value) === String(fallback)) ?? undefined)
    if (more.length > 0 || (fallback !== undefined && asAllowed === undefined))
      problem(
        number,
        where("default"),
        defaultCell,
        `the default is not among the allowed values (${allowed.map((value) => JSON.stringify(value)).join(", ")})`
      )
    if (reportId !== undefined && label !== "") {
      const labelKey = `${reportId}\u0000label\u0000${label.toLowerCase()}`
      const first = seen.get(labelKey)
      if (first !== undefined)
        problem(
          number,
          where("filter_label"),
          label,
          `report ${reportId} has a filter labelled ${JSON.stringify(label)} already, in row ${first}`
        )
      else seen.set(labelKey, number)
    }
    if (reportId !== undefined && column !== "") {
      const columnKey = `${reportId}\u0000column\u0000${column}`
      const first = seen.get(columnKey)
      if (first !== undefined)
        problem(number, where("column_name"), column, `report ${reportId} filters ${column} already, in row ${first}`)
      else seen.set(columnKey, number)
    }
    if (reportId !== undefined)
      byReport.set(reportId, [
        ...(byReport.get(reportId) ?? []),
        { row: number, filter: { label, column, allowed_values: allowed, default: asAllowed ?? null } }
      ])
  })
  if (dataRows === 0) problem(2, "", null, "the sheet has a header row but no filters under it")
  for (const [reportId, entries] of byReport)
    if (entries.length > MAX_EXPRESSIONS)
      problem(
        entries[MAX_EXPRESSIONS]?.row ?? 2,
        where("filter_label"),
        entries[MAX_EXPRESSIONS]?.filter.label ?? "",
        `report ${reportId} has ${entries.length} filters; Power BI's URL filter takes at most ${MAX_EXPRESSIONS}`
      )
  if (problems.length > 0) return { ok: false, problems }
  const reports: Array<ImportedReport> = []
  for (const [reportId, entries] of byReport) {
    const candidate = { report_id: reportId, file_name: read.fileName, filters: entries.map((entry) => entry.filter) }
    const decoded = decodeIssues(FiltersImported, candidate)
    if (!decoded.ok)
      return {
        ok: false,
        problems: decoded.issues.map((issue) => ({ sheet, row: 0, column: issue.path, value: "", message: issue.message }))
      }
    reports.push(decoded.value as ImportedReport)
  }
  return { ok: true, reports }
}

/** An imported sheet as the one registry event that carries it whole. */
export const sheetEvent = (reports: ReadonlyArray<ImportedReport>): typeof FilterSheetImported.Type => ({
  file_name: reports[0]?.file_name ?? "",
  reports: reports.map(({ report_id, filters }) => ({ report_id, filters }))
})
