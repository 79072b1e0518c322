import type { FilterValue } from "../contracts/reports.ts"

/**
 * Power BI's URL filter syntax (powerbi.md §4), written: `Table/Field eq 'value'` expressions
 * joined by `and`, names escaped as `_xHHHH_`, strings in single quotes with a quote doubled. The
 * same expression goes in an embed URL's `filter=` and in Export To File's one report-level filter.
 */

/** Most expressions one filter may join. */
export const MAX_EXPRESSIONS = 10
/** Longest URL query string Power BI takes, escapes included. */
export const MAX_QUERY_LENGTH = 2000

const CONTROL = /\p{Cc}/u

/** Why `column` cannot be addressed by the URL filter, or undefined when it can. */
export const columnProblem = (column: string): string | undefined => {
  if (column.length > 200) return `is ${column.length} characters long; at most 200`
  if (CONTROL.test(column)) return "holds a control character"
  const parts = column.split("/")
  if (parts.length !== 2) return "must be Table/Field: the table's name, a slash, the field's name (e.g. Store/Region)"
  const [table = "", field = ""] = parts
  if (table.trim() === "" || field.trim() === "") return "must be Table/Field with both names, e.g. Store/Region"
  if (table !== table.trim() || field !== field.trim()) return "has spaces around a name"
  if (table.startsWith("INF") || field.startsWith("INF"))
    return "names a table or field starting with INF, which Power BI's URL filter cannot address"
  return undefined
}

/**
 * A table or field name as the URL filter takes it: every character but ASCII letters, digits and
 * `_` as `_xHHHH_` (its UTF-16 code unit), and an `_` that would start what reads as an escape
 * escaped too, so `Table Name` is `Table_x0020_Name` and a literal `_x0020_` survives.
 */
export const escapeName = (name: string): string => {
  let out = ""
  for (let i = 0; i < name.length; i++) {
    const char = name[i] as string
    const escapesNext = char === "_" && /^_x[0-9A-Fa-f]{4}_/.test(name.slice(i))
    out +=
      /[A-Za-z0-9]/.test(char) || (char === "_" && !escapesNext)
        ? char
        : `_x${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}_`
  }
  return out
}

/** A value as a URL filter literal: `'O''Brien'`, `2024`, `true`. */
export const filterLiteral = (value: FilterValue): string => {
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`
  if (typeof value === "boolean") return value ? "true" : "false"
  if (!Number.isFinite(value)) throw new Error(`${value} is not a number Power BI's URL filter can compare`)
  if (Number.isInteger(value) && !Number.isSafeInteger(value))
    throw new Error(`${value} is beyond 2^53-1, the largest whole number the URL filter takes`)
  return String(value)
}

/** The filter expression of the selections, in order: one value `eq`, several `in (…)`; undefined when nothing is selected. */
export const buildFilter = (
  selections: ReadonlyArray<{ readonly column: string; readonly values: ReadonlyArray<FilterValue> }>
): { readonly filter: string | undefined } | { readonly problem: string } => {
  const chosen = selections.filter((selection) => selection.values.length > 0)
  if (chosen.length === 0) return { filter: undefined }
  if (chosen.length > MAX_EXPRESSIONS)
    return { problem: `${chosen.length} filters are set; Power BI's URL filter joins at most ${MAX_EXPRESSIONS} expressions` }
  const expressions: Array<string> = []
  for (const { column, values } of chosen) {
    const problem = columnProblem(column)
    if (problem !== undefined) return { problem: `the column ${JSON.stringify(column)} ${problem}` }
    const [table, field] = column.split("/") as [string, string]
    const name = `${escapeName(table)}/${escapeName(field)}`
    try {
      expressions.push(
        values.length === 1
          ? `${name} eq ${filterLiteral(values[0] as FilterValue)}`
          : `${name} in (${values.map(filterLiteral).join(",")})`
      )
    } catch (error) {
      return { problem: `${column}: ${(error as Error).message}` }
    }
  }
  return { filter: expressions.join(" and ") }
}

/** The `filter=` query parameter of an embed URL, or why it is too long for Power BI. */
export const filterQuery = (filter: string): { readonly query: string } | { readonly problem: string } => {
  const query = `filter=${encodeURIComponent(filter)}`
  return query.length > MAX_QUERY_LENGTH
    ? { problem: `the filter is ${query.length} characters in the URL; Power BI takes at most ${MAX_QUERY_LENGTH}: choose fewer values` }
    : { query }
}
