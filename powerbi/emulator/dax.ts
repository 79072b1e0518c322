import type { PushType } from "../rules.ts"

/**
 * The small subset of DAX the emulator's `executeQueries` answers, parsed and evaluated over a push
 * dataset's stored rows: enough for a test or a bench to ask Power BI what it holds.
 *
 * ```
 * query      := EVALUATE ROW ( name , expression { , name , expression } )
 * name       := "text"                       ("" inside is a quote)
 * expression := COUNTROWS ( table )
 *             | MAX ( column ) | MIN ( column ) | SUM ( column ) | DISTINCTCOUNT ( column )
 * column     := table [Column name]          (]] inside is a ])
 * table      := 'Table name'                 ('' inside is a quote)
 *             | BareName                     (letters, digits, _; not starting with a digit)
 * ```
 *
 * Keywords and function names are case-insensitive, and so are table and column names, as in DAX
 * (an exact match is preferred); whitespace may stand between any two tokens. Anything else (other
 * functions, `EVALUATE 'Table'`, `DEFINE`, measures, comments, more than one `EVALUATE`) is refused
 * with a message that says the emulator supports only this subset and lists it.
 *
 * Semantics, as DAX's:
 * - BLANK is a missing or null cell; it comes back as `null`. An empty string is a value, not BLANK.
 * - `COUNTROWS` of an empty table is BLANK, not 0.
 * - `MAX`, `MIN` and `SUM` skip BLANK cells and are BLANK when no value is left (an empty table
 *   included). `MAX`/`MIN` take numbers, dates and text (text compared case-insensitively, as the
 *   model's default collation does), not TRUE/FALSE; `SUM` takes Int64, Double and Decimal columns
 *   (DAX also adds dates; the emulator refuses that).
 * - `DISTINCTCOUNT` counts BLANK as one value (DAX documents this; `DISTINCTCOUNTNOBLANK` is the one
 *   that skips it), and is BLANK for an empty table. Text that differs only in case is one value.
 * - Decimal values are rounded to 4 decimal places (the type's scale); DateTime values come back as
 *   `YYYY-MM-DDTHH:mm:ss[.sss]` in UTC with no zone (DAX datetimes carry none: an inference, the
 *   service's exact rendering is not documented).
 *
 * Errors read like the service's, `Query (line, column) …`, and name what is wrong.
 */

/** The subset, as refusals list it. */
export const DAX_SUBSET =
  "EVALUATE ROW(\"name\", expression, …) where each expression is COUNTROWS('Table'), MAX('Table'[Column]), MIN('Table'[Column]), SUM('Table'[Column]) or DISTINCTCOUNT('Table'[Column])"

export type DaxAggregate = "MAX" | "MIN" | "SUM" | "DISTINCTCOUNT"

/** Where a name stands in the query: a 0-based offset into its text. */
export interface DaxTableRef {
  readonly table: string
  readonly at: number
}

export interface DaxColumnRef extends DaxTableRef {
  readonly column: string
  readonly columnAt: number
}

export type DaxExpression =
  | { readonly function: "COUNTROWS"; readonly at: number; readonly table: DaxTableRef }
  | { readonly function: DaxAggregate; readonly at: number; readonly column: DaxColumnRef }

/** `EVALUATE ROW(…)`: the query's text and its named expressions, in order. */
export interface DaxQuery {
  readonly text: string
  readonly columns: ReadonlyArray<{ readonly name: string; readonly expression: DaxExpression }>
}

/** A table as the evaluator reads it: its declared columns and its rows. */
export interface DaxTable {
  readonly name: string
  readonly columns: ReadonlyArray<{ readonly name: string; readonly dataType: PushType }>
  readonly rows: ReadonlyArray<Readonly<Record<string, unknown>>>
}

export type DaxValue = number | string | boolean | null

/** The one-row table `ROW` returns: each cell under the name executeQueries gives it, `[name]`. */
export interface DaxResult {
  readonly cells: ReadonlyArray<{ readonly name: string; readonly value: DaxValue }>
}

export type DaxOutcome<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly message: string }

/** Thrown inside the parser and the evaluator only; the exported functions answer with a {@link DaxOutcome}. */
class DaxFailure extends Error {}

/** `Query (line, column)` of a 0-based offset, both 1-based, as the service's messages begin. */
const positionOf = (text: string, at: number): string => {
  const before = text.slice(0, at).split(/\r\n|\r|\n/)
  return `Query (${before.length}, ${(before.at(-1)?.length ?? 0) + 1})`
}

type TokenKind = "word" | "string" | "table" | "column" | "(" | ")" | "," | "other" | "end"

interface Token {
  readonly kind: TokenKind
  /** A word as written, or the value of a string, quoted table or column (escapes undone). */
  readonly text: string
  readonly at: number
}

const WORD = /[\p{L}_][\p{L}\p{N}_]*/uy
const SPACE = /\s+/y

/** Reads a literal closed by `close`, where the closing character doubled stands for itself. */
const readDelimited = (text: string, start: number, close: string, what: string): { readonly value: string; readonly end: number } => {
  let value = ""
  let i = start + 1
  for (;;) {
    const next = text.indexOf(close, i)
    if (next === -1) throw new DaxFailure(`${positionOf(text, start)} The ${what} that starts here is not closed with ${close}.`)
    value += text.slice(i, next)
    if (text[next + 1] === close) {
      value += close
      i = next + 2
    } else return { value, end: next + 1 }
  }
}

const tokenize = (text: string): ReadonlyArray<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < text.length) {
    SPACE.lastIndex = i
    if (SPACE.test(text)) {
      i = SPACE.lastIndex
      continue
    }
    const char = text[i] as string
    if (char === "(" || char === ")" || char === ",") {
      tokens.push({ kind: char, text: char, at: i })
      i++
    } else if (char === '"' || char === "'" || char === "[") {
      const [close, kind, what] =
        char === '"'
          ? (['"', "string", "text"] as const)
          : char === "'"
            ? (["'", "table", "quoted table name"] as const)
            : (["]", "column", "column name"] as const)
      const { value, end } = readDelimited(text, i, close, what)
      tokens.push({ kind, text: value, at: i })
      i = end
    } else {
      WORD.lastIndex = i
      const word = WORD.exec(text)
      if (word !== null) {
        tokens.push({ kind: "word", text: word[0], at: i })
        i += word[0].length
      } else {
        // A number, an operator, a dot…: never part of the subset, but named when refused.
        const run = /[^\s()[\],"']+/y
        run.lastIndex = i
        const other = run.exec(text)?.[0] ?? char
        tokens.push({ kind: "other", text: other, at: i })
        i += other.length
      }
    }
  }
  tokens.push({ kind: "end", text: "", at: text.length })
  return tokens
}

const describeToken = (token: Token): string => {
  switch (token.kind) {
    case "end":
      return "the end of the query"
    case "string":
      return `the text "${token.text}"`
    case "table":
      return `the table '${token.text}'`
    case "column":
      return `the column [${token.text}]`
    case "word":
    case "other":
      return `'${token.text}'`
    default:
      return `'${token.kind}'`
  }
}

const AGGREGATES: ReadonlyArray<DaxAggregate> = ["MAX", "MIN", "SUM", "DISTINCTCOUNT"]

/** Parses a query of the subset, or says where and why it is not one. */
export const parseDax = (text: string): DaxOutcome<DaxQuery> => {
  try {
    const tokens = tokenize(text)
    let index = 0
    const peek = () => tokens[index] as Token
    const outside = (expected: string): never => {
      const token = peek()
      throw new DaxFailure(
        `${positionOf(text, token.at)} The emulator supports only this DAX subset: ${DAX_SUBSET}. Expected ${expected}, found ${describeToken(token)}.`
      )
    }
    const take = (kind: TokenKind, expected: string): Token => {
      const token = peek()
      if (token.kind !== kind) return outside(expected)
      index++
      return token
    }
    const keyword = (word: string): Token => {
      const token = peek()
      if (token.kind !== "word" || token.text.toUpperCase() !== word) return outside(word)
      index++
      return token
    }
    const table = (): DaxTableRef => {
      const token = peek()
      if (token.kind !== "table" && token.kind !== "word") return outside("a table name ('Table' or Table)")
      index++
      return { table: token.text, at: token.at }
    }
    const expression = (): DaxExpression => {
      const token = peek()
      const name = token.kind === "word" ? token.text.toUpperCase() : ""
      if (name === "COUNTROWS") {
        index++
        take("(", "(")
        const counted = table()
        take(")", ")")
        return { function: "COUNTROWS", at: token.at, table: counted }
      }
      const aggregate = AGGREGATES.find((candidate) => candidate === name)
      if (aggregate === undefined) return outside("COUNTROWS, MAX, MIN, SUM or DISTINCTCOUNT")
      index++
      take("(", "(")
      const owner = table()
      const column = take("column", "a column name in [ ] after the table")
      take(")", ")")
      return { function: aggregate, at: token.at, column: { ...owner, column: column.text, columnAt: column.at } }
    }

    keyword("EVALUATE")
    keyword("ROW")
    take("(", "(")
    const columns: Array<DaxQuery["columns"][number]> = []
    for (;;) {
      const name = take("string", 'a column name in double quotes ("name")')
      if (name.text === "") throw new DaxFailure(`${positionOf(text, name.at)} The name of a column created by ROW cannot be empty.`)
      if (columns.some((column) => column.name.toLowerCase() === name.text.toLowerCase()))
        throw new DaxFailure(`${positionOf(text, name.at)} The column name "${name.text}" is used more than once in ROW.`)
      take(",", ", and an expression after the name")
      columns.push({ name: name.text, expression: expression() })
      if (peek().kind !== ",") break
      index++
    }
    take(")", ") or , and another name")
    take("end", "the end of the query")
    return { ok: true, value: { text, columns } }
  } catch (error) {
    if (error instanceof DaxFailure) return { ok: false, message: error.message }
    throw error
  }
}

/** An exact match first, then one that differs in case only: DAX names are case-insensitive. */
const byName = <A extends { readonly name: string }>(items: ReadonlyArray<A>, name: string): A | undefined =>
  items.find((item) => item.name === name) ?? items.find((item) => item.name.toLowerCase() === name.toLowerCase())

const isBlank = (value: unknown): boolean => value === null || value === undefined

/** Compares text as the model's default collation does: case-insensitive, accent-sensitive. */
const collator = new Intl.Collator("en", { sensitivity: "accent" })

/** A cell as DAX sees it, by its column's type: BLANK as null. */
const read = (type: PushType, value: unknown): DaxValue => {
  if (isBlank(value)) return null
  switch (type) {
    case "Decimal":
      return Math.round((value as number) * 10_000) / 10_000
    case "DateTime":
      return daxDateTime(Date.parse(value as string))
    default:
      return value as DaxValue
  }
}

/** A DAX datetime as text: UTC, no zone, milliseconds only when there are some. */
const daxDateTime = (ms: number): string => new Date(ms).toISOString().replace(/(\.000)?Z$/, "")

/** Evaluates a parsed query over `tables`, or says which name or type it cannot take. */
export const evaluateDax = (query: DaxQuery, tables: ReadonlyArray<DaxTable>): DaxOutcome<DaxResult> => {
  try {
    const at = (offset: number) => positionOf(query.text, offset)
    const tableOf = (ref: DaxTableRef): DaxTable => {
      const table = byName(tables, ref.table)
      if (table === undefined) throw new DaxFailure(`${at(ref.at)} Cannot find table '${ref.table}'.`)
      return table
    }
    const cells = query.columns.map(({ name, expression }) => {
      if (expression.function === "COUNTROWS") {
        const rows = tableOf(expression.table).rows.length
        return { name: `[${name}]`, value: rows === 0 ? null : rows }
      }
      const ref = expression.column
      const table = tableOf(ref)
      const column = byName(table.columns, ref.column)
      if (column === undefined)
        throw new DaxFailure(
          `${at(ref.columnAt)} Column '${ref.column}' in table '${table.name}' cannot be found or may not be used in this expression.`
        )
      const type = column.dataType
      const values = table.rows.map((row) => read(type, row[column.name]))
      return {
        name: `[${name}]`,
        value: aggregate(expression.function, values, { table: table.name, column: column.name, type }, at(expression.at))
      }
    })
    return { ok: true, value: { cells } }
  } catch (error) {
    if (error instanceof DaxFailure) return { ok: false, message: error.message }
    throw error
  }
}

/** `fn` over a column's cells (BLANK as null); `where` begins a refusal's message. */
const aggregate = (
  fn: DaxAggregate,
  values: ReadonlyArray<DaxValue>,
  { table, column, type }: { readonly table: string; readonly column: string; readonly type: PushType },
  where: string
): DaxValue => {
  if (fn === "DISTINCTCOUNT") {
    if (values.length === 0) return null
    // BLANK is one of the distinct values (DAX's DISTINCTCOUNT counts it; DISTINCTCOUNTNOBLANK would not).
    const distinct = new Set(values.map((value) => (typeof value === "string" && type === "String" ? value.toLowerCase() : value)))
    return distinct.size
  }
  if (type === "Boolean")
    throw new DaxFailure(
      `${where} The function ${fn} cannot work with values of type Boolean: column '${table}'[${column}] holds TRUE/FALSE values.`
    )
  if (fn === "SUM" && (type === "String" || type === "DateTime"))
    throw new DaxFailure(
      type === "String"
        ? `${where} The function SUM takes an argument that evaluates to numbers and cannot work with values of type String: column '${table}'[${column}].`
        : `${where} The emulator's SUM adds Int64, Double and Decimal columns only; column '${table}'[${column}] is DateTime.`
    )
  const present = values.filter((value): value is number | string => value !== null)
  if (present.length === 0) return null
  if (fn === "SUM") {
    const sum = (present as ReadonlyArray<number>).reduce((total, value) => total + value, 0)
    return type === "Decimal" ? Math.round(sum * 10_000) / 10_000 : sum
  }
  const order = (a: number | string, b: number | string): number =>
    type === "String"
      ? collator.compare(a as string, b as string)
      : type === "DateTime"
        ? Date.parse(`${a as string}Z`) - Date.parse(`${b as string}Z`)
        : (a as number) - (b as number)
  return present.reduce((best, value) => ((fn === "MAX" ? order(value, best) > 0 : order(value, best) < 0) ? value : best))
}

/** Parses and evaluates a query: what executeQueries runs. */
export const runDax = (text: string, tables: ReadonlyArray<DaxTable>): DaxOutcome<DaxResult> => {
  const parsed = parseDax(text)
  return parsed.ok ? evaluateDax(parsed.value, tables) : parsed
}

/** The result row as executeQueries serializes it: without `includeNulls`, a BLANK cell is left out of the row. */
export const resultRow = (result: DaxResult, includeNulls: boolean): Record<string, DaxValue> =>
  Object.fromEntries(result.cells.filter((cell) => includeNulls || cell.value !== null).map((cell) => [cell.name, cell.value]))
