import { strFromU8, unzipSync } from "fflate"
import readXlsxFile, { readSheet } from "read-excel-file/node"
import { describe, expect, it } from "vitest"
import { boolean, type Column, date, integer, numeric, text, timestamp } from "../projections/table.ts"
import type { Cells } from "./rows.ts"
import { xlsxChunks } from "./xlsx.ts"

async function* batchesOf(batches: ReadonlyArray<ReadonlyArray<Cells>>) {
  for (const batch of batches) yield batch
}

/** The whole workbook `xlsxChunks` streams, as one buffer. */
const workbook = async (
  columns: ReadonlyArray<Column>,
  batches: ReadonlyArray<ReadonlyArray<Cells>>,
  sheetName = "Export"
): Promise<Buffer> => {
  const chunks: Array<Uint8Array> = []
  for await (const chunk of xlsxChunks(columns, batchesOf(batches), sheetName)) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** The sheet's rows as a reader sees them, text untrimmed. */
const sheetOf = async (columns: ReadonlyArray<Column>, batches: ReadonlyArray<ReadonlyArray<Cells>>) =>
  readSheet(await workbook(columns, batches), { trim: false })

/** The XML of one part of the workbook's zip. */
const part = (file: Buffer, name: string): string => {
  const entry = unzipSync(new Uint8Array(file))[name]
  if (entry === undefined) throw new Error(`no ${name} in the workbook`)
  return strFromU8(entry)
}

const asDate = (value: unknown): Date => {
  expect(value).toBeInstanceOf(Date)
  return value as Date
}

/**
 * An Excel instant is a fraction of a day in a double, and read-excel-file floors it to the millisecond:
 * within a millisecond is as close as an instant comes back.
 */
const expectInstant = (value: unknown, iso: string) => expect(Math.abs(asDate(value).getTime() - Date.parse(iso))).toBeLessThanOrEqual(1)

describe("an XLSX export", () => {
  const columns = [
    integer("pieces"),
    numeric("oee_pct", true),
    date("report_date"),
    timestamp("snapshot_time", true),
    boolean("resolved", true),
    text("notes", true)
  ]

  it("starts with a header row of the column names", async () => {
    const [header] = await sheetOf(columns, [])
    expect(header).toEqual(["pieces", "oee_pct", "report_date", "snapshot_time", "resolved", "notes"])
  })

  it("has only the header row when there are no rows", async () => {
    expect(await sheetOf(columns, [])).toHaveLength(1)
    expect(await sheetOf(columns, [[], []])).toHaveLength(1)
  })

  it("writes integers and decimals as numbers, exactly as Postgres wrote them", async () => {
    const [, first, second] = await sheetOf(
      [integer("pieces"), numeric("oee_pct")],
      [
        [
          [1200, "87.125"],
          [-3, "-0.5"]
        ]
      ]
    )
    expect(first).toEqual([1200, 87.125])
    expect(second).toEqual([-3, -0.5])
  })

  it("writes dates and instants as Excel dates of the same UTC day and instant", async () => {
    const [, first, second] = await sheetOf(
      [date("report_date"), timestamp("snapshot_time")],
      [
        [
          ["2024-02-29", "2025-01-15T09:30:00.000Z"],
          ["1999-12-31", "2025-07-01T23:59:59.500Z"]
        ]
      ]
    )
    expect(asDate(first?.[0]).toISOString()).toBe("2024-02-29T00:00:00.000Z")
    expectInstant(first?.[1], "2025-01-15T09:30:00.000Z")
    expect(asDate(second?.[0]).toISOString()).toBe("1999-12-31T00:00:00.000Z")
    expectInstant(second?.[1], "2025-07-01T23:59:59.500Z")
  })

  it("writes booleans as booleans", async () => {
    const [, first, second] = await sheetOf([boolean("is_planned")], [[[true], [false]]])
    expect(first).toEqual([true])
    expect(second).toEqual([false])
  })

  it("leaves null cells empty, whatever the column's type", async () => {
    const [, row] = await sheetOf(columns, [[[7, null, "2025-01-15", null, null, null]]])
    expect(row?.[0]).toBe(7)
    expect(row?.slice(1, 2)).toEqual([null])
    expect(asDate(row?.[2]).toISOString()).toBe("2025-01-15T00:00:00.000Z")
    expect(row?.slice(3)).toEqual([null, null, null])
  })

  it("styles each cell by its type: whole numbers, decimals, dates and instants, with the header bold on a fill", async () => {
    const sheet = part(
      await workbook(columns, [[[1, "2.5", "2025-01-15", "2025-01-15T00:00:00.000Z", true, "x"]]]),
      "xl/worksheets/sheet1.xml"
    )
    expect(sheet).toContain(`<c r="A1" s="1" t="inlineStr"><is><t>pieces</t></is></c>`)
    expect(sheet).toContain(`<c r="A2" s="2"><v>1</v></c>`)
    expect(sheet).toContain(`<c r="B2" s="3"><v>2.5</v></c>`)
    expect(sheet).toContain(`<c r="C2" s="4"><v>45672</v></c>`)
    expect(sheet).toContain(`<c r="D2" s="5"><v>45672</v></c>`)
    expect(sheet).toContain(`<c r="E2" t="b"><v>1</v></c>`)
    expect(sheet).toContain(`<c r="F2" t="inlineStr"><is><t>x</t></is></c>`)
  })

  it("freezes the header row and puts filters on it", async () => {
    const file = await workbook(columns, [])
    const sheet = part(file, "xl/worksheets/sheet1.xml")
    expect(sheet).toContain(`<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>`)
    expect(sheet).toMatch(/<autoFilter ref="A1:F1"\/><\/worksheet>$/)
    expect(part(file, "xl/workbook.xml")).toContain(`'Export'!$A$1:$F$1</definedName>`)
  })

  it("keeps rows in order across batches, numbering them on from batch to batch", async () => {
    const [header, ...rows] = await sheetOf(
      [integer("n"), text("label")],
      [
        [
          [1, "one"],
          [2, "two"]
        ],
        [],
        [[3, "three"]],
        [[4, "four"]]
      ]
    )
    expect(header).toEqual(["n", "label"])
    expect(rows).toEqual([
      [1, "one"],
      [2, "two"],
      [3, "three"],
      [4, "four"]
    ])
  })

  it("letters columns past Z as AA, AB, … so that every cell lands in its own column", async () => {
    const wide = Array.from({ length: 60 }, (_, i) => integer(`c${i}`))
    const [header, row] = await sheetOf(wide, [[wide.map((_, i) => i * 10)]])
    expect(header).toEqual(wide.map((column) => column.name))
    expect(row).toEqual(wide.map((_, i) => i * 10))
    const sheet = part(await workbook(wide, [[wide.map((_, i) => i)]]), "xl/worksheets/sheet1.xml")
    for (const [ref, value] of [
      ["Z2", 25],
      ["AA2", 26],
      ["AZ2", 51],
      ["BA2", 52],
      ["BH2", 59]
    ] as const)
      expect(sheet).toContain(`<c r="${ref}" s="2"><v>${value}</v></c>`)
    expect(sheet).toContain(`<autoFilter ref="A1:BH1"/>`)
  })
})

describe("text in an XLSX export", () => {
  const read = async (...values: ReadonlyArray<string>) =>
    (await sheetOf([text("value")], [values.map((value) => [value])])).slice(1).map((row) => row[0])

  it("survives XML's special characters", async () => {
    const values = [`<b>Tom & "Jerry"</b>`, "a < b > c", "&amp; already escaped", "it's", "]]> end of CDATA"]
    expect(await read(...values)).toEqual(values)
  })

  it("keeps tabs and line breaks, and the leading and trailing spaces", async () => {
    const values = ["line one\nline two", "col\tcol", "  padded  ", " lead", "trail "]
    expect(await read(...values)).toEqual(values)
    expect(part(await workbook([text("value")], [[["  padded  "]]]), "xl/worksheets/sheet1.xml")).toContain(
      `<t xml:space="preserve">  padded  </t>`
    )
  })

  it("replaces the control characters XML cannot carry with U+FFFD and keeps the rest", async () => {
    expect(await read("a\u0000b", "bell\u0007", "\u000Bvt\u000Cff", "esc\u001B[0m")).toEqual([
      "a\uFFFDb",
      "bell\uFFFD",
      "\uFFFDvt\uFFFDff",
      "esc\uFFFD[0m"
    ])
  })

  it("keeps non-ASCII text whole: accents, CJK and emoji", async () => {
    const values = ["Zürich Straße", "東京工場", "OEE 📈 ↑"]
    expect(await read(...values)).toEqual(values)
  })

  it("leaves formulas as text: a cell starting with = is never run", async () => {
    expect(await read("=1+1", '=HYPERLINK("http://x")')).toEqual(["=1+1", '=HYPERLINK("http://x")'])
    expect(part(await workbook([text("value")], [[["=1+1"]]]), "xl/worksheets/sheet1.xml")).not.toContain("<f>")
  })

  it("cuts text at Excel's limit of 32,767 characters, counting characters before escaping", async () => {
    const [long, ampersands, short] = await read("x".repeat(40_000), "&".repeat(32_800), "y".repeat(32_767))
    expect(long).toBe("x".repeat(32_767))
    expect(ampersands).toBe("&".repeat(32_767))
    expect(short).toBe("y".repeat(32_767))
  })

  it("writes the header's names escaped too", async () => {
    const [header] = await sheetOf([text(`a<b>&"c"`), integer("n")], [])
    expect(header).toEqual([`a<b>&"c"`, "n"])
  })
})

describe("the sheet's name", () => {
  const sheetName = async (name: string) => {
    const sheets = await readXlsxFile(await workbook([integer("n")], [[[1]]], name))
    expect(sheets).toHaveLength(1)
    return sheets[0]?.sheet
  }

  it("is the name given when Excel allows it", async () => {
    expect(await sheetName("OEE_Snapshots")).toBe("OEE_Snapshots")
  })

  it("has the characters Excel forbids in sheet names, \\ / ? * [ ] :, replaced by _", async () => {
    expect(await sheetName("a\\b/c?d*e[f]g:h")).toBe("a_b_c_d_e_f_g_h")
  })

  it("is cut to Excel's 31 characters", async () => {
    expect(await sheetName("Warehouse_Erasure_Events_2025-01-15")).toBe("Warehouse_Erasure_Events_2025-0")
  })

  it("keeps XML's special characters and quotes, escaped in the workbook and in its filter's defined name", async () => {
    expect(await sheetName(`R&D "<Line 1>"`)).toBe(`R&D "<Line 1>"`)
    const file = await workbook([integer("n")], [], "O'Brien's")
    expect(part(file, "xl/workbook.xml")).toContain(`>'O''Brien''s'!$A$1:$A$1</definedName>`)
    expect((await readXlsxFile(file))[0]?.sheet).toBe("O'Brien's")
  })
})

describe("streaming an XLSX export", () => {
  it("yields the workbook's start before reading a batch, and each batch's rows before reading the next", async () => {
    let pulled = 0
    async function* counted() {
      for (let n = 0; n < 3; n++) {
        pulled++
        yield [[n]] as ReadonlyArray<Cells>
      }
    }
    const pulledAtChunk: Array<number> = []
    const chunks: Array<Uint8Array> = []
    for await (const chunk of xlsxChunks([integer("n")], counted(), "S")) {
      pulledAtChunk.push(pulled)
      chunks.push(chunk)
    }
    expect(pulledAtChunk[0]).toBe(0)
    for (const batch of [1, 2, 3]) expect(pulledAtChunk, `chunks after batch ${batch}`).toContain(batch)
    const [, ...rows] = await readSheet(Buffer.concat(chunks))
    expect(rows).toEqual([[0], [1], [2]])
  })
})
