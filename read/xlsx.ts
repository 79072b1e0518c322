import { constants, crc32, deflateRawSync } from "node:zlib"
import { strToU8, Zip, type ZipInputFile, ZipPassThrough } from "fflate"
import type { Column } from "../projections/table.ts"
import type { Cells } from "./rows.ts"
import { escapeXml } from "../platform/text.ts"

/**
 * A one-sheet XLSX workbook (SpreadsheetML in a zip), streamed row batch by row batch: each
 * batch's XML is deflated as it is written, in the caller's turn, so the zip never runs ahead of
 * the client and memory stays flat. fflate lays out the zip; the sheet is deflated by Node's zlib,
 * one independent segment per batch ending on a sync flush — segments concatenate into one valid
 * deflate stream — because fflate's own deflate took 11.6 s of the 432,000-row data mart where
 * zlib takes 1.2 s. Written here rather than with exceljs, whose streaming writer buffers rows
 * off-heap while it compresses (507 MiB peak RSS with a 64 MiB heap on the same export) and took 46 s.
 *
 * Numbers are numbers (decimals exactly as Postgres wrote them), dates and UTC instants are Excel
 * dates with a date format, booleans are booleans; the header row is bold on a filled background,
 * frozen, with filters; nulls are empty cells.
 */

const MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
const RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
const PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
const DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

/** Excel refuses longer cell text (it "repairs" the file): longer values are cut to this; CSV and JSON carry them whole. */
const EXCEL_CELL_CHARACTERS = 32_767

/** Style ids in `cellXfs` below. */
const STYLE = { header: 1, integer: 2, decimal: 3, date: 4, instant: 5 } as const

const STYLES = [
  DECLARATION,
  `<styleSheet xmlns="${MAIN}">`,
  `<numFmts count="3">`,
  `<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>`,
  `<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/>`,
  `<numFmt numFmtId="166" formatCode="#,##0.00##"/>`,
  `</numFmts>`,
  `<fonts count="2">`,
  `<font><sz val="11"/><name val="Calibri"/></font>`,
  `<font><b/><sz val="11"/><color rgb="FFFFFFFF"/><name val="Calibri"/></font>`,
  `</fonts>`,
  `<fills count="3">`,
  `<fill><patternFill patternType="none"/></fill>`,
  `<fill><patternFill patternType="gray125"/></fill>`,
  `<fill><patternFill patternType="solid"><fgColor rgb="FF1F4E79"/><bgColor indexed="64"/></patternFill></fill>`,
  `</fills>`,
  `<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>`,
  `<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>`,
  `<cellXfs count="6">`,
  `<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>`,
  `<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>`,
  `<xf numFmtId="1" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>`,
  `<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>`,
  `<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>`,
  `<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>`,
  `</cellXfs>`,
  `<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>`,
  `</styleSheet>`
].join("")

/** `A`, `B`, …, `Z`, `AA`, …: a column's letters. */
const columnLetters = (index: number): string => {
  let letters = ""
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) letters = String.fromCharCode(65 + ((n - 1) % 26)) + letters
  return letters
}

/** Days since 1899-12-30, Excel's date serial, of an ISO date or instant. */
const excelSerial = (iso: string) => Date.parse(iso.length === 10 ? `${iso}T00:00:00Z` : iso) / 86_400_000 + 25_569

type CellWriter = (value: unknown, ref: string) => string

const LEADING_OR_TRAILING_SPACE = /^\s|\s$/

const cellWriter = (column: Column): CellWriter => {
  switch (column.type) {
    case "integer":
    case "bigint":
      return (value, ref) => `<c r="${ref}" s="${STYLE.integer}"><v>${String(value)}</v></c>`
    case "numeric":
      return (value, ref) => `<c r="${ref}" s="${STYLE.decimal}"><v>${String(value)}</v></c>`
    case "date":
      return (value, ref) => `<c r="${ref}" s="${STYLE.date}"><v>${excelSerial(value as string)}</v></c>`
    case "timestamptz":
      return (value, ref) => `<c r="${ref}" s="${STYLE.instant}"><v>${excelSerial(value as string)}</v></c>`
    case "boolean":
      return (value, ref) => `<c r="${ref}" t="b"><v>${value === true ? 1 : 0}</v></c>`
    default:
      return (value, ref) => {
        const text = escapeXml(String(value).slice(0, EXCEL_CELL_CHARACTERS))
        return LEADING_OR_TRAILING_SPACE.test(text)
          ? `<c r="${ref}" t="inlineStr"><is><t xml:space="preserve">${text}</t></is></c>`
          : `<c r="${ref}" t="inlineStr"><is><t>${text}</t></is></c>`
      }
  }
}

/** A zip entry whose data we deflate ourselves (see above); fflate writes its headers and directory. */
const deflatedEntry = (filename: string) => {
  const entry: ZipInputFile = { filename, size: 0, crc: 0, compression: 8 }
  return {
    entry,
    push: (xml: string, final = false) => {
      const raw = Buffer.from(xml, "utf8")
      entry.crc = crc32(raw, entry.crc)
      entry.size += raw.length
      const deflated = deflateRawSync(raw, { level: 1, finishFlush: final ? constants.Z_FINISH : constants.Z_SYNC_FLUSH })
      entry.ondata?.(null, deflated, final)
    }
  }
}

const width = (column: Column) => Math.max(12, column.name.length + 3, column.type === "timestamptz" ? 20 : 0)

export async function* xlsxChunks(
  columns: ReadonlyArray<Column>,
  batches: AsyncIterable<ReadonlyArray<Cells>>,
  sheetName: string
): AsyncGenerator<Uint8Array> {
  const pending: Array<Uint8Array> = []
  let failure: Error | undefined
  const zip = new Zip((error, chunk) => {
    if (error !== null) failure = error
    else pending.push(chunk)
  })
  const drain = function* () {
    if (failure !== undefined) throw failure
    yield* pending.splice(0)
  }
  const constant = (name: string, content: string) => {
    const file = new ZipPassThrough(name)
    zip.add(file)
    file.push(strToU8(content), true)
  }
  const name = escapeXml(sheetName.replace(/[\\/?*[\]:]/g, "_").slice(0, 31))
  const letters = columns.map((_, i) => columnLetters(i))
  const lastColumn = letters[letters.length - 1] ?? "A"
  constant(
    "[Content_Types].xml",
    [
      `${DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">`,
      `<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>`,
      `<Default Extension="xml" ContentType="application/xml"/>`,
      `<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>`,
      `<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`,
      `<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>`,
      `</Types>`
    ].join("")
  )
  constant(
    "_rels/.rels",
    [
      `${DECLARATION}<Relationships xmlns="${PACKAGE_RELATIONSHIPS}">`,
      `<Relationship Id="rId1" Type="${RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/></Relationships>`
    ].join("")
  )
  constant(
    "xl/workbook.xml",
    [
      `${DECLARATION}<workbook xmlns="${MAIN}" xmlns:r="${RELATIONSHIPS}"><sheets>`,
      `<sheet name="${name}" sheetId="1" r:id="rId1"/></sheets><definedNames>`,
      `<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">'${name.replaceAll("'", "''")}'!$A$1:$${lastColumn}$1</definedName>`,
      `</definedNames></workbook>`
    ].join("")
  )
  constant(
    "xl/_rels/workbook.xml.rels",
    [
      `${DECLARATION}<Relationships xmlns="${PACKAGE_RELATIONSHIPS}">`,
      `<Relationship Id="rId1" Type="${RELATIONSHIPS}/worksheet" Target="worksheets/sheet1.xml"/>`,
      `<Relationship Id="rId2" Type="${RELATIONSHIPS}/styles" Target="styles.xml"/></Relationships>`
    ].join("")
  )
  constant("xl/styles.xml", STYLES)
  const sheet = deflatedEntry("xl/worksheets/sheet1.xml")
  zip.add(sheet.entry)
  const header = columns
    .map((column, i) => `<c r="${letters[i]}1" s="${STYLE.header}" t="inlineStr"><is><t>${escapeXml(column.name)}</t></is></c>`)
    .join("")
  sheet.push(
    `${DECLARATION}<worksheet xmlns="${MAIN}" xmlns:r="${RELATIONSHIPS}"><sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews><cols>${columns
      .map((column, i) => `<col min="${i + 1}" max="${i + 1}" width="${width(column)}" customWidth="1"/>`)
      .join("")}</cols><sheetData><row r="1">${header}</row>`
  )
  yield* drain()
  const writers = columns.map(cellWriter)
  let row = 1
  for await (const rows of batches) {
    let xml = ""
    for (const cells of rows) {
      row++
      xml += `<row r="${row}">`
      for (let i = 0; i < writers.length; i++) {
        const value = cells[i]
        if (value !== null && value !== undefined) xml += (writers[i] as CellWriter)(value, `${letters[i]}${row}`)
      }
      xml += "</row>"
    }
    sheet.push(xml)
    yield* drain()
  }
  sheet.push(`</sheetData><autoFilter ref="A1:${lastColumn}1"/></worksheet>`, true)
  zip.end()
  yield* drain()
}
