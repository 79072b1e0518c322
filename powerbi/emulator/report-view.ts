import { PDFDocument, rgb, StandardFonts } from "pdf-lib"
import { PNG } from "pngjs"
import { zipSync } from "fflate"
import { escapeXml } from "../../platform/text.ts"

/**
 * What an emulated report draws, pure: the rows of its visual's table that Power BI's URL filter
 * selects, one colour block per row, coloured by the visual's column. The embed page, a PNG export
 * and a PDF export all draw the same blocks, so a test can tell from a picture which rows it shows.
 */

export type Literal = string | number | boolean
export interface Condition {
  readonly table: string
  readonly column: string
  readonly op: "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "in"
  readonly values: ReadonlyArray<Literal>
}

/** `_xHHHH_` escapes of a table or field name decoded. */
export const decodeName = (name: string): string =>
  name.replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

const NAME = /^[A-Za-z0-9_]+$/

/**
 * Power BI's URL filter syntax, as far as the emulator applies it: `Table/Field op literal` joined by
 * `and`; `eq ne` on strings, numbers and booleans, `gt ge lt le` on numbers, `in (…)`; strings in
 * single quotes with a quote doubled; numbers with an optional L/D/M/F suffix. At most 10 expressions.
 */
export const parseFilter = (
  text: string
): { readonly ok: true; readonly conditions: ReadonlyArray<Condition> } | { readonly ok: false; readonly message: string } => {
  let at = 0
  const fail = (message: string) => ({
    ok: false as const,
    message: `${message} at character ${at + 1} of the filter ${JSON.stringify(text)}`
  })
  const space = () => {
    while (text[at] === " ") at++
  }
  const word = (): string => {
    const start = at
    while (at < text.length && /[A-Za-z0-9_]/.test(text[at] as string)) at++
    return text.slice(start, at)
  }
  const literal = (): Literal | undefined => {
    space()
    if (text[at] === "'") {
      let value = ""
      at++
      for (;;) {
        if (at >= text.length) return undefined
        if (text[at] === "'") {
          if (text[at + 1] === "'") {
            value += "'"
            at += 2
            continue
          }
          at++
          return value
        }
        value += text[at]
        at++
      }
    }
    const match = /^(-?\d+(\.\d+)?)([LDMF])?/.exec(text.slice(at))
    if (match !== null) {
      at += match[0].length
      return Number(match[1])
    }
    const token = word()
    if (token === "true") return true
    if (token === "false") return false
    return undefined
  }
  const conditions: Array<Condition> = []
  for (;;) {
    space()
    const table = word()
    if (table === "" || text[at] !== "/") return fail("expected Table/Field")
    at++
    const column = word()
    if (column === "" || !NAME.test(table) || !NAME.test(column)) return fail("expected Table/Field")
    if (table.startsWith("INF") || column.startsWith("INF")) return fail("a name starting with INF cannot be filtered")
    space()
    const op = word()
    if (op === "in") {
      space()
      if (text[at] !== "(") return fail("expected ( after in")
      at++
      const values: Array<Literal> = []
      for (;;) {
        const value = literal()
        if (value === undefined) return fail("expected a value")
        values.push(value)
        space()
        if (text[at] === ",") {
          at++
          continue
        }
        if (text[at] === ")") {
          at++
          break
        }
        return fail("expected , or )")
      }
      conditions.push({ table: decodeName(table), column: decodeName(column), op, values })
    } else if (["eq", "ne", "gt", "ge", "lt", "le"].includes(op)) {
      const value = literal()
      if (value === undefined) return fail("expected a value")
      if (op !== "eq" && op !== "ne" && typeof value !== "number") return fail(`${op} compares numbers and dates only`)
      conditions.push({ table: decodeName(table), column: decodeName(column), op: op as Condition["op"], values: [value] })
    } else return fail(`unknown operator ${JSON.stringify(op)}`)
    space()
    if (at >= text.length) break
    if (word() !== "and") return fail("expected and")
  }
  if (conditions.length > 10) return { ok: false, message: `the filter has ${conditions.length} expressions; Power BI takes at most 10` }
  return { ok: true, conditions }
}

const same = (row: unknown, value: Literal): boolean =>
  typeof value === "string"
    ? String(row).toLowerCase() === value.toLowerCase()
    : typeof value === "number"
      ? Number(row) === value
      : row === value

/** Whether a row passes one condition (strings compared case-insensitively, as Power BI compares them). */
export const passes = (row: Readonly<Record<string, unknown>>, condition: Condition): boolean => {
  const cell = row[condition.column]
  const [value] = condition.values
  switch (condition.op) {
    case "eq":
      return same(cell, value as Literal)
    case "ne":
      return !same(cell, value as Literal)
    case "in":
      return condition.values.some((one) => same(cell, one))
    case "gt":
      return Number(cell) > Number(value)
    case "ge":
      return Number(cell) >= Number(value)
    case "lt":
      return Number(cell) < Number(value)
    case "le":
      return Number(cell) <= Number(value)
  }
}

/**
 * A value's colour: a hue from the value's FNV-1a hash, fully saturated at mid lightness, so no
 * colour is near white, grey or black (the background and the text). Distinct values may share a
 * hue only by hash collision among 360 hues.
 */
export const colourOf = (value: string): readonly [number, number, number] => {
  let hash = 0x811c9dc5
  for (const char of value) hash = Math.imul(hash ^ (char.codePointAt(0) as number), 0x01000193) >>> 0
  const hue = hash % 360
  const f = (n: number) => {
    const k = (n + hue / 30) % 12
    return Math.round(255 * (0.5 - 0.5 * Math.max(-1, Math.min(k - 3, 9 - k, 1))))
  }
  return [f(0), f(8), f(4)] as const
}

export interface PageView {
  readonly title: string
  readonly blocks: ReadonlyArray<{ readonly value: string; readonly colour: readonly [number, number, number] }>
}

export const viewOf = (
  title: string,
  rows: ReadonlyArray<Readonly<Record<string, unknown>>>,
  conditions: ReadonlyArray<Condition>,
  column: string
): PageView => ({
  title,
  blocks: rows
    .filter((row) => conditions.every((condition) => passes(row, condition)))
    .map((row) => String(row[column] ?? ""))
    .map((value) => ({ value, colour: colourOf(value) }))
})

export const WIDTH = 800
export const HEIGHT = 600
const TITLE_BAR = 40
const MARGIN = 20

/** Where each block goes: a grid filling the page under its title bar. */
const layout = (count: number) => {
  const columns = Math.max(1, Math.ceil(Math.sqrt(count * ((WIDTH - 2 * MARGIN) / (HEIGHT - TITLE_BAR - 2 * MARGIN)))))
  const rows = Math.max(1, Math.ceil(count / columns))
  const size = Math.floor(Math.min((WIDTH - 2 * MARGIN) / columns, (HEIGHT - TITLE_BAR - 2 * MARGIN) / rows))
  return (i: number) => ({
    x: MARGIN + (i % columns) * size,
    y: TITLE_BAR + MARGIN + Math.floor(i / columns) * size,
    size: Math.max(2, size - 4)
  })
}

/** The page as a PNG: white, a dark title bar, the blocks. */
export const pagePng = (view: PageView): Uint8Array => {
  const png = new PNG({ width: WIDTH, height: HEIGHT })
  const paint = (x0: number, y0: number, w: number, h: number, [r, g, b]: readonly [number, number, number]) => {
    for (let y = y0; y < Math.min(HEIGHT, y0 + h); y++)
      for (let x = x0; x < Math.min(WIDTH, x0 + w); x++) {
        const i = (y * WIDTH + x) * 4
        png.data[i] = r
        png.data[i + 1] = g
        png.data[i + 2] = b
        png.data[i + 3] = 255
      }
  }
  paint(0, 0, WIDTH, HEIGHT, [255, 255, 255])
  paint(0, 0, WIDTH, TITLE_BAR, [40, 40, 40])
  const place = layout(view.blocks.length)
  view.blocks.forEach((block, i) => {
    const { x, y, size } = place(i)
    paint(x, y, size, size, block.colour)
  })
  return new Uint8Array(PNG.sync.write(png))
}

/** Several pages as Power BI's PNG export gives them: one PNG, or a zip of one PNG per page. */
export const pagesPng = (views: ReadonlyArray<PageView>): { readonly bytes: Uint8Array; readonly extension: ".png" | ".zip" } =>
  views.length === 1
    ? { bytes: pagePng(views[0] as PageView), extension: ".png" }
    : { bytes: zipSync(Object.fromEntries(views.map((view, i) => [`page${i + 1}.png`, pagePng(view)]))), extension: ".zip" }

/** The pages as one PDF, one PDF page each. */
export const pagesPdf = async (views: ReadonlyArray<PageView>): Promise<Uint8Array> => {
  const pdf = await PDFDocument.create()
  const font = await pdf.embedFont(StandardFonts.Helvetica)
  for (const view of views) {
    const page = pdf.addPage([WIDTH, HEIGHT])
    page.drawRectangle({ x: 0, y: HEIGHT - TITLE_BAR, width: WIDTH, height: TITLE_BAR, color: rgb(40 / 255, 40 / 255, 40 / 255) })
    // Helvetica's WinAnsi covers Latin text; anything else is drawn as '?'.
    page.drawText(view.title.replace(/[^\x20-\x7e\u00a0-\u00ff]/g, "?"), { x: MARGIN, y: HEIGHT - 27, size: 16, font, color: rgb(1, 1, 1) })
    const place = layout(view.blocks.length)
    view.blocks.forEach((block, i) => {
      const { x, y, size } = place(i)
      const [r, g, b] = block.colour
      page.drawRectangle({ x, y: HEIGHT - y - size, width: size, height: size, color: rgb(r / 255, g / 255, b / 255) })
    })
  }
  return pdf.save()
}

/**
 * The embedded report page: the blocks as divs (each with its value), then the embed SDK's event
 * `rendered` on the window and to the parent frame; or the error and `error`.
 */
export const embedPage = (view: PageView | { readonly error: string }): string => {
  const body =
    "error" in view
      ? `<p role="alert" id="error">${escapeXml(view.error)}</p>`
      : `<header><h1>${escapeXml(view.title)}</h1><p>${view.blocks.length} rows</p></header><main id="visual">${view.blocks
          .map(
            (block) =>
              `<div class="block" data-value="${escapeXml(block.value)}" title="${escapeXml(block.value)}" style="background:rgb(${block.colour.join(",")})"></div>`
          )
          .join("")}</main>`
  const event = "error" in view ? { event: "error", message: view.error } : { event: "rendered" }
  return [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeXml("error" in view ? "Report error" : view.title)}</title>`,
    "<style>html,body{margin:0;background:#fff;font-family:sans-serif}header{background:#282828;color:#fff;padding:.2rem 1rem;display:flex;gap:1rem;align-items:baseline}",
    "h1{font-size:1.2rem;margin:.4rem 0}header p{margin:0}main{display:flex;flex-wrap:wrap;gap:4px;padding:20px}.block{width:48px;height:48px}</style></head>",
    `<body>${body}<script>`,
    `const detail = ${JSON.stringify(event).replaceAll("<", "\\u003c")};`,
    "requestAnimationFrame(() => requestAnimationFrame(() => {",
    "  const e = detail.event === 'error' ? Object.assign(new Event('error'), { message: detail.message }) : new Event('rendered');",
    "  window.dispatchEvent(e);",
    "  if (window.parent !== window) window.parent.postMessage(detail, '*');",
    "}));",
    "</script></body></html>"
  ].join("")
}
