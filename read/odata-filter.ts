import type { Column } from "../projections/table.ts"
import { BadParameter } from "./errors.ts"
import { parseInstant } from "./params.ts"
import { binder, type Parameter, quoteIdent } from "../platform/sql.ts"

/**
 * The subset of OData v4 `$filter` Power Query folds into: comparisons (`eq ne gt ge lt le`) of a
 * property with a literal, `and`, `or`, `not`, parentheses, and `contains`/`startswith`/`endswith`
 * on text. Literals: 'text' ('' escapes a quote), numbers, true/false, null, dates (2025-01-15)
 * and instants (2025-01-15T00:00:00Z). Properties are looked up in the feed's columns and every
 * literal becomes a bound parameter checked against its column's type, so no input reaches SQL text.
 */

type Literal =
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "number"; readonly value: string }
  | { readonly kind: "boolean"; readonly value: boolean }
  | { readonly kind: "null" }
  | { readonly kind: "date"; readonly value: string }
  | { readonly kind: "instant"; readonly value: string }

type Token = { readonly at: number } & (
  | { readonly kind: "(" | ")" | "," }
  | { readonly kind: "word"; readonly value: string }
  | { readonly kind: "literal"; readonly literal: Literal }
)

const PARAMETER = "$filter"
const MAX_LENGTH = 4096
const MAX_DEPTH = 32
const COMPARISONS: Readonly<Record<string, string>> = { eq: "=", ne: "<>", gt: ">", ge: ">=", lt: "<", le: "<=" }
const FLIPPED: Readonly<Record<string, string>> = { eq: "eq", ne: "ne", gt: "lt", ge: "le", lt: "gt", le: "ge" }
const FUNCTIONS = ["contains", "startswith", "endswith"]
const SUPPORTED = "comparisons (eq ne gt ge lt le) of a property with a literal, and/or/not, parentheses, contains/startswith/endswith"

const fail = (message: string): never => {
  throw new BadParameter({ parameter: PARAMETER, message })
}

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})/
const DATE = /^\d{4}-\d{2}-\d{2}(?![\dT:])/
const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])/
const WORD = /^[A-Za-z_][A-Za-z0-9_]*/

const tokenize = (input: string): ReadonlyArray<Token> => {
  const tokens: Array<Token> = []
  let at = 0
  while (at < input.length) {
    const rest = input.slice(at)
    const char = input[at] as string
    if (/\s/.test(char)) {
      at++
      continue
    }
    if (char === "(" || char === ")" || char === ",") {
      tokens.push({ kind: char, at })
      at++
      continue
    }
    if (char === "'") {
      let value = ""
      let end = at + 1
      for (;;) {
        if (end >= input.length) fail(`unterminated string starting at position ${at + 1}; close it with ' (write '' for a quote inside)`)
        if (input[end] === "'") {
          if (input[end + 1] === "'") {
            value += "'"
            end += 2
            continue
          }
          break
        }
        value += input[end]
        end++
      }
      tokens.push({ kind: "literal", literal: { kind: "string", value }, at })
      at = end + 1
      continue
    }
    const instant = INSTANT.exec(rest)
    if (instant !== null) {
      // .NET writes seven fractional digits; Postgres keeps six.
      const value = instant[0].replace(/\.(\d{6})\d/, ".$1")
      parseInstant(PARAMETER, value)
      tokens.push({ kind: "literal", literal: { kind: "instant", value }, at })
      at += instant[0].length
      continue
    }
    const date = DATE.exec(rest)
    if (date !== null) {
      parseInstant(PARAMETER, date[0])
      tokens.push({ kind: "literal", literal: { kind: "date", value: date[0] }, at })
      at += date[0].length
      continue
    }
    const number = NUMBER.exec(rest)
    if (number !== null) {
      tokens.push({ kind: "literal", literal: { kind: "number", value: number[0] }, at })
      at += number[0].length
      continue
    }
    const word = WORD.exec(rest)
    if (word !== null) {
      const value = word[0]
      if (value === "true" || value === "false") tokens.push({ kind: "literal", literal: { kind: "boolean", value: value === "true" }, at })
      else if (value === "null") tokens.push({ kind: "literal", literal: { kind: "null" }, at })
      else tokens.push({ kind: "word", value, at })
      at += value.length
      continue
    }
    fail(`unexpected ${JSON.stringify(char)} at position ${at + 1}; supported: ${SUPPORTED}`)
  }
  return tokens
}

/** Casts for a literal compared with a column, or why the two do not compare. */
const castFor = (column: Column, literal: Literal): { value: string | boolean; cast: string } => {
  const mismatch = (expected: string) =>
    fail(`${column.name} is ${column.type === "timestamptz" ? "an instant" : `of type ${column.type}`}; compare it with ${expected}`)
  switch (column.type) {
    case "text":
      return literal.kind === "string" ? { value: literal.value, cast: "text" } : mismatch("a 'quoted string'")
    case "integer":
    case "bigint": {
      const limit = column.type === "integer" ? 2n ** 31n : 2n ** 63n
      const whole = literal.kind === "number" && /^-?\d{1,19}$/.test(literal.value) ? BigInt(literal.value) : undefined
      return whole !== undefined && whole >= -limit && whole < limit && literal.kind === "number"
        ? { value: literal.value, cast: column.type }
        : mismatch(`a whole number from ${-limit} to ${limit - 1n}`)
    }
    case "numeric":
      return literal.kind === "number" ? { value: literal.value, cast: "numeric" } : mismatch("a number")
    case "boolean":
      return literal.kind === "boolean" ? { value: literal.value, cast: "boolean" } : mismatch("true or false")
    case "date":
    case "timestamptz":
      if (literal.kind === "date") return { value: literal.value, cast: column.type === "date" ? "date" : "timestamptz" }
      if (literal.kind === "instant") return { value: literal.value, cast: "timestamptz" }
      return mismatch("a date (2025-01-15) or an instant (2025-01-15T00:00:00Z)")
  }
}

/** `$filter` as a SQL condition over `columns`, with its values appended to `params`. */
export const filterSql = (input: string, columns: ReadonlyArray<Column>, params: Array<Parameter>): string => {
  if (input.length > MAX_LENGTH) fail(`longer than ${MAX_LENGTH} characters`)
  const tokens = tokenize(input)
  if (tokens.length === 0) fail(`empty; give a condition such as snapshot_time ge 2025-01-01T00:00:00Z`)
  let position = 0
  const { bind } = binder(params)
  const peek = () => tokens[position]
  const describe = (token: Token | undefined) =>
    token === undefined
      ? "the end of the filter"
      : token.kind === "word"
        ? `${JSON.stringify(token.value)} at position ${token.at + 1}`
        : `${token.kind === "literal" ? "a literal" : JSON.stringify(token.kind)} at position ${token.at + 1}`
  const expect = (kind: "(" | ")" | ",") => {
    const token = tokens[position]
    if (token?.kind !== kind) fail(`expected ${JSON.stringify(kind)} but found ${describe(token)}`)
    position++
  }
  const isWord = (value: string) => {
    const token = peek()
    return token?.kind === "word" && token.value === value
  }
  const property = (name: string): Column => {
    const column = columns.find((candidate) => candidate.name === name)
    return column ?? fail(`unknown property ${JSON.stringify(name)}; properties: ${columns.map((candidate) => candidate.name).join(", ")}`)
  }
  const operand = (): { column: Column } | { literal: Literal } => {
    const token = tokens[position++]
    if (token?.kind === "word") return { column: property(token.value) }
    if (token?.kind === "literal") return { literal: token.literal }
    return fail(`expected a property or a literal but found ${describe(token)}`)
  }
  const comparison = (): string => {
    const left = operand()
    const operator = peek()
    if (operator?.kind !== "word" || COMPARISONS[operator.value] === undefined)
      return fail(`expected one of eq, ne, gt, ge, lt, le but found ${describe(operator)}`)
    position++
    const right = operand()
    const [column, literal, op] =
      "column" in left && "literal" in right
        ? [left.column, right.literal, operator.value]
        : "literal" in left && "column" in right
          ? [right.column, left.literal, FLIPPED[operator.value] as string]
          : fail(`compare a property with a literal (near position ${operator.at + 1})`)
    if (literal.kind === "null") {
      if (op === "eq") return `${quoteIdent(column.name)} IS NULL`
      if (op === "ne") return `${quoteIdent(column.name)} IS NOT NULL`
      return fail(`null compares only with eq or ne`)
    }
    const { value, cast } = castFor(column, literal)
    // OData (and Power Query when it does not fold) holds null ne 'x' true: rows with nulls stay in.
    if (op === "ne") return `${quoteIdent(column.name)} IS DISTINCT FROM ${bind(value, cast)}`
    return `${quoteIdent(column.name)} ${COMPARISONS[op]} ${bind(value, cast)}`
  }
  const call = (name: string): string => {
    position++
    expect("(")
    const target = tokens[position++]
    if (target?.kind !== "word") return fail(`${name}() takes a property first, found ${describe(target)}`)
    const column = property(target.value)
    if (column.type !== "text") fail(`${name}() works on text properties; ${column.name} is ${column.type}`)
    expect(",")
    const needle = tokens[position++]
    if (needle?.kind !== "literal" || needle.literal.kind !== "string")
      return fail(`${name}() takes a 'quoted string' second, found ${describe(needle)}`)
    expect(")")
    const c = quoteIdent(column.name)
    const v = bind(needle.literal.value, "text")
    const condition =
      name === "contains"
        ? `strpos(${c}, ${v}) > 0`
        : name === "startswith"
          ? `starts_with(${c}, ${v})`
          : `right(${c}, length(${v})) = ${v}`
    if (isWord("eq") || isWord("ne")) {
      const negate = (peek() as { value: string }).value === "ne"
      position++
      const flag = tokens[position++]
      if (flag?.kind !== "literal" || flag.literal.kind !== "boolean") return fail(`${name}() compares only with true or false`)
      return flag.literal.value !== negate ? `(${condition})` : `NOT (${condition})`
    }
    return `(${condition})`
  }
  const primary = (depth: number): string => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`)
    const token = peek()
    if (token?.kind === "(") {
      position++
      const inner = or(depth + 1)
      expect(")")
      return `(${inner})`
    }
    if (token?.kind === "word" && FUNCTIONS.includes(token.value) && tokens[position + 1]?.kind === "(") return call(token.value)
    if (token?.kind === "word" && tokens[position + 1]?.kind === "(")
      fail(`function ${token.value}() is not supported; supported: ${FUNCTIONS.join(", ")}`)
    return comparison()
  }
  const not = (depth: number): string => {
    if (isWord("not")) {
      position++
      // A comparison with null is unknown in SQL and false in OData: not(false) keeps the row.
      return `NOT coalesce((${not(depth + 1)}), false)`
    }
    return primary(depth)
  }
  const and = (depth: number): string => {
    const parts = [not(depth)]
    while (isWord("and")) {
      position++
      parts.push(not(depth))
    }
    return parts.join(" AND ")
  }
  const or = (depth: number): string => {
    const parts = [and(depth)]
    while (isWord("or")) {
      position++
      parts.push(and(depth))
    }
    return parts.length === 1 ? (parts[0] as string) : parts.map((part) => `(${part})`).join(" OR ")
  }
  const condition = or(0)
  if (position < tokens.length) fail(`unexpected ${describe(tokens[position])}; join conditions with and/or`)
  return condition
}
