import { publishedSchema } from "../projections/catalogue.ts"
import type { Column } from "../projections/table.ts"
import { BadParameter } from "./errors.ts"
import type { Feed } from "./feeds.ts"
import { filterSql } from "./odata-filter.ts"
import { jsonChunks } from "./formats.ts"
import { type Cells, cellSql, type RowQuery } from "./rows.ts"
import { binder, quoteIdent } from "../platform/sql.ts"
import { escapeXml } from "../platform/text.ts"

/** Rows per page unless the client asks for fewer or more with `Prefer: odata.maxpagesize`. */
export const DEFAULT_PAGE_SIZE = 10_000
export const MAX_PAGE_SIZE = 50_000

export const ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

const edmTypes: Readonly<Record<Column["type"], string>> = {
  text: "Edm.String",
  integer: "Edm.Int32",
  bigint: "Edm.Int64",
  numeric: "Edm.Decimal",
  date: "Edm.Date",
  timestamptz: "Edm.DateTimeOffset",
  boolean: "Edm.Boolean"
}

/** The CSDL of one mart: an entity type and entity set per published object, keyed as the mart is. */
export const metadataXml = (mart: string, feeds: ReadonlyArray<Feed>): string => {
  const namespace = escapeXml(`IngestMesh.${mart}`)
  const types = feeds.map(
    (feed) =>
      `<EntityType Name="${escapeXml(feed.name)}"><Key>${feed.key.map((name) => `<PropertyRef Name="${escapeXml(name)}"/>`).join("")}</Key>${feed.columns
        .map(
          (column) =>
            `<Property Name="${escapeXml(column.name)}" Type="${edmTypes[column.type]}" Nullable="${column.nullable === true ? "true" : "false"}"${column.type === "numeric" ? ' Scale="variable"' : ""}${
              column.type === "timestamptz" ? ' Precision="3"' : ""
            }/>`
        )
        .join("")}</EntityType>`
  )
  const sets = feeds.map((feed) => `<EntitySet Name="${escapeXml(feed.name)}" EntityType="${namespace}.${escapeXml(feed.name)}"/>`)
  return [
    `<?xml version="1.0" encoding="utf-8"?>`,
    `<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>`,
    `<Schema Namespace="${namespace}" xmlns="http://docs.oasis-open.org/odata/ns/edm">`,
    ...types,
    `<EntityContainer Name="${escapeXml(mart)}">`,
    ...sets,
    `</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>`
  ].join("")
}

export const serviceDocument = (root: string, feeds: ReadonlyArray<Feed>) => ({
  "@odata.context": `${root}/$metadata`,
  value: feeds.map((feed) => ({ name: feed.name, kind: "EntitySet", url: feed.name }))
})

/** The system query options of one request, checked against the entity set. */
export interface ODataOptions {
  readonly select: ReadonlyArray<Column>
  readonly filter?: string
  readonly orderBy: ReadonlyArray<{ readonly column: Column; readonly descending: boolean }>
  readonly top?: number
  readonly skip: number
  /** Where the previous page ended: its last row's `$orderby` values, then its key (keyset paging). */
  readonly after?: ReadonlyArray<string | null>
  readonly count: boolean
}

const SUPPORTED_OPTIONS = ["$select", "$filter", "$orderby", "$top", "$skip", "$skiptoken", "$count", "$format"]

const wholeNumber = (parameter: string, value: string): number => {
  if (!/^\d{1,9}$/.test(value))
    throw new BadParameter({ parameter, message: `${JSON.stringify(value)} is not a whole number; use 0 or more` })
  return Number(value)
}

const columnOf = (feed: Feed, parameter: string, name: string): Column => {
  const column = feed.columns.find((candidate) => candidate.name === name)
  if (column === undefined) {
    throw new BadParameter({
      parameter,
      message: `unknown property ${JSON.stringify(name)} of ${feed.name}; properties: ${feed.columns.map((candidate) => candidate.name).join(", ")}`
    })
  }
  return column
}

const decodeSkipToken = (feed: Feed, orderBy: number, token: string): ReadonlyArray<string | null> => {
  try {
    const values = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown
    if (
      Array.isArray(values) &&
      values.length === orderBy + feed.key.length &&
      values.every((value, i) => typeof value === "string" || (value === null && i < orderBy))
    )
      return values as ReadonlyArray<string | null>
  } catch {
    // falls through to the error below
  }
  throw new BadParameter({
    parameter: "$skiptoken",
    message: "not a token this service issued for this entity set and $orderby; follow @odata.nextLink as given"
  })
}

/** Parses the request's `$` options; custom (non-`$`) options are ignored, as OData allows. */
export const parseODataOptions = (feed: Feed, query: URLSearchParams): ODataOptions => {
  for (const name of new Set(query.keys())) {
    if (!name.startsWith("$")) continue
    if (!SUPPORTED_OPTIONS.includes(name)) {
      throw new BadParameter({
        parameter: name,
        message: `this service does not support ${name}; supported: ${SUPPORTED_OPTIONS.join(", ")}`
      })
    }
    if (query.getAll(name).length > 1) throw new BadParameter({ parameter: name, message: "given more than once; give it once" })
  }
  const format = query.get("$format")
  if (format !== null && format !== "json" && !format.startsWith("application/json")) {
    throw new BadParameter({ parameter: "$format", message: `${JSON.stringify(format)} is not served; use json` })
  }
  const select = query.get("$select")
  const selected =
    select === null || select.trim() === "*"
      ? feed.columns
      : [...new Set(select.split(",").map((name) => name.trim()))].map((name) =>
          name === ""
            ? (() => {
                throw new BadParameter({
                  parameter: "$select",
                  message: "has an empty property name; give a comma-separated list of properties"
                })
              })()
            : columnOf(feed, "$select", name)
        )
  const orderBy = (query.get("$orderby") ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const [name, direction, extra] = part.split(/\s+/)
      if (extra !== undefined || (direction !== undefined && direction !== "asc" && direction !== "desc")) {
        throw new BadParameter({
          parameter: "$orderby",
          message: `${JSON.stringify(part)} is not "property", "property asc" or "property desc"`
        })
      }
      return { column: columnOf(feed, "$orderby", name as string), descending: direction === "desc" }
    })
  const top = query.get("$top")
  const skip = query.get("$skip")
  const token = query.get("$skiptoken")
  const count = query.get("$count")
  if (count !== null && count !== "true" && count !== "false")
    throw new BadParameter({ parameter: "$count", message: `${JSON.stringify(count)} is not true or false` })
  return {
    select: selected,
    ...(query.get("$filter") === null ? {} : { filter: query.get("$filter") as string }),
    orderBy,
    ...(top === null ? {} : { top: wholeNumber("$top", top) }),
    skip: skip === null ? 0 : wholeNumber("$skip", skip),
    ...(token === null ? {} : { after: decodeSkipToken(feed, orderBy.length, token) }),
    count: count === "true"
  }
}

/** `Prefer: odata.maxpagesize=N`, bounded; the page size to use and whether the preference was applied. */
export const pageSizeFor = (prefer: string | undefined): { size: number; applied: boolean } => {
  const match = /odata\.maxpagesize=(\d+)/.exec(prefer ?? "")
  if (match === null) return { size: DEFAULT_PAGE_SIZE, applied: false }
  return { size: Math.max(1, Math.min(MAX_PAGE_SIZE, Number(match[1]))), applied: true }
}

export interface PageQuery {
  /** The rows of the page plus one, to learn whether another page follows; each row ends with the key's values as text. */
  readonly rows: RowQuery
  readonly count?: RowQuery
  /** Rows this page returns at most. */
  readonly pageRows: number
}

/** A column of the page order, with its direction: ascending puts nulls last, descending first. */
interface SortKey {
  readonly column: Column
  readonly descending: boolean
}

/**
 * The rows after `after` in the order `keys` (lexicographic, null-aware): for each position, every
 * earlier column equal and this one strictly past. The key comes last and is never null, so the
 * order is total and a walk reads each row once even while rows are added.
 */
const afterSql = (
  keys: ReadonlyArray<SortKey>,
  after: ReadonlyArray<string | null>,
  bind: (value: string, cast: string) => string
): string => {
  // All ascending and never null (the usual case: the key alone): one row comparison, which an index on the key serves directly.
  if (keys.every(({ column, descending }, i) => !descending && column.nullable !== true && after[i] !== null)) {
    return `(${keys.map(({ column }) => quoteIdent(column.name)).join(", ")}) > (${keys.map(({ column }, i) => bind(after[i] as string, column.type)).join(", ")})`
  }
  const equal = ({ column }: SortKey, value: string | null) =>
    value === null ? `${quoteIdent(column.name)} IS NULL` : `${quoteIdent(column.name)} = ${bind(value, column.type)}`
  const past = ({ column, descending }: SortKey, value: string | null) => {
    const name = quoteIdent(column.name)
    if (descending) return value === null ? `${name} IS NOT NULL` : `${name} < ${bind(value, column.type)}`
    if (value === null) return "false"
    return column.nullable === true ? `(${name} > ${bind(value, column.type)} OR ${name} IS NULL)` : `${name} > ${bind(value, column.type)}`
  }
  return keys
    .map(
      (key, i) =>
        `(${[...keys.slice(0, i).map((earlier, j) => equal(earlier, after[j] ?? null)), past(key, after[i] ?? null)].join(" AND ")})`
    )
    .join(" OR ")
}

/**
 * The statements of one page, ordered by `$orderby` then the key. Pages follow each other by
 * keyset: a `$skiptoken` holds where the last page ended, so each row is read once however deep
 * the walk, without the cost of an offset.
 */
export const pageQuery = (feed: Feed, options: ODataOptions, pageSize: number): PageQuery => {
  const schema = quoteIdent(publishedSchema({ name: feed.mart }))
  const { params, bind } = binder()
  const where: Array<string> = []
  if (options.filter !== undefined) where.push(`(${filterSql(options.filter, feed.columns, params)})`)
  const countWhere = [...where]
  const countParams = [...params]
  const keyColumns = feed.key.map((name) => feed.columns.find((column) => column.name === name) as Column)
  const sortKeys: ReadonlyArray<SortKey> = [
    ...options.orderBy,
    ...keyColumns
      .filter((column) => !options.orderBy.some((order) => order.column.name === column.name))
      .map((column) => ({ column, descending: false }))
  ]
  if (options.after !== undefined) where.push(`(${afterSql(sortKeys, positionOf(options, feed, options.after), bind)})`)
  const order = sortKeys.map(({ column, descending }) => `${quoteIdent(column.name)} ${descending ? "DESC NULLS FIRST" : "ASC NULLS LAST"}`)
  const pageRows = Math.min(pageSize, options.top ?? Number.MAX_SAFE_INTEGER)
  const from = `${schema}.${quoteIdent(feed.name)}${where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`}`
  const select = [
    ...options.select.map((column) => `${cellSql(column)} AS ${quoteIdent(column.name)}`),
    ...sortKeys.map(({ column }, i) => `(${quoteIdent(column.name)})::text AS "$position${i}"`)
  ]
  const text = `SELECT ${select.join(", ")} FROM ${from} ORDER BY ${order.join(", ")} LIMIT ${bind(pageRows + 1, "bigint")}${options.skip > 0 ? ` OFFSET ${bind(options.skip, "bigint")}` : ""}`
  return {
    rows: { text, params, columns: options.select },
    ...(options.count
      ? {
          count: {
            text: `SELECT count(*)::bigint FROM ${schema}.${quoteIdent(feed.name)}${countWhere.length === 0 ? "" : ` WHERE ${countWhere.join(" AND ")}`}`,
            params: countParams,
            columns: []
          }
        }
      : {}),
    pageRows
  }
}

/**
 * A token's values laid out on the sort keys: the `$orderby` values, then the key columns not
 * already ordered by (a key column named in `$orderby` is taken from there).
 */
const positionOf = (options: ODataOptions, feed: Feed, after: ReadonlyArray<string | null>): ReadonlyArray<string | null> => {
  const ordered = after.slice(0, options.orderBy.length)
  const key = after.slice(options.orderBy.length)
  return [
    ...ordered,
    ...feed.key.flatMap((name, i) => (options.orderBy.some((order) => order.column.name === name) ? [] : [key[i] ?? null]))
  ]
}

/** The token for the position of a page's last row, read from its trailing `$position` cells. */
export const positionToken = (options: ODataOptions, feed: Feed, cells: ReadonlyArray<unknown>): string => {
  const at = options.select.length
  const ordered = options.orderBy.map((_, i) => cells[at + i] as string | null)
  const unordered = feed.key.filter((name) => !options.orderBy.some((order) => order.column.name === name))
  const key = feed.key.map((name) => {
    const ordinal = options.orderBy.findIndex((order) => order.column.name === name)
    return (ordinal >= 0 ? cells[at + ordinal] : cells[at + options.orderBy.length + unordered.indexOf(name)]) as string
  })
  return Buffer.from(JSON.stringify([...ordered, ...key])).toString("base64url")
}

/**
 * The `@odata.nextLink` after a page that was full and had more rows behind it: the same request
 * with the position moved on (`$skiptoken`; a first page's `$skip` is behind it), every other
 * parameter — the key in `api_key` included — kept.
 */
export const nextLink = (url: URL, options: ODataOptions, pageRows: number, token: string): string => {
  const next = new URL(url)
  const keep = [...next.searchParams.entries()].filter(([name]) => !["$skip", "$skiptoken", "$top"].includes(name))
  next.search = ""
  for (const [name, value] of keep) next.searchParams.append(name, value)
  if (options.top !== undefined) next.searchParams.set("$top", String(options.top - pageRows))
  next.searchParams.set("$skiptoken", token)
  return next.toString()
}

/**
 * One page's JSON body, chunk by chunk: the context and count, the page's rows (the query reads one
 * row past the page to tell whether there is more) and, when there is, the `@odata.nextLink` that
 * continues from the page's last row.
 */
export const odataPage = (page: {
  readonly root: string
  readonly feed: Feed
  readonly url: URL
  readonly options: ODataOptions
  readonly query: PageQuery
  readonly total: string | undefined
  readonly batches: AsyncIterable<ReadonlyArray<Cells>>
}): AsyncGenerator<string> => {
  const { feed, options, query } = page
  const selected = options.select.length === feed.columns.length ? "" : `(${options.select.map((column) => column.name).join(",")})`
  let last: Cells | undefined
  let more = false
  const pageRows = async function* () {
    let emitted = 0
    for await (const batch of page.batches) {
      const room = query.pageRows - emitted
      const taken = batch.length > room ? batch.slice(0, room) : batch
      if (taken.length > 0) {
        emitted += taken.length
        last = taken[taken.length - 1]
        yield taken
      }
      if (batch.length > room) {
        more = true
        break
      }
    }
  }
  const topLeft = options.top === undefined ? Number.MAX_SAFE_INTEGER : options.top - query.pageRows
  const open = `{"@odata.context":${JSON.stringify(`${page.root}/$metadata#${feed.name}${selected}`)},${page.total === undefined ? "" : `"@odata.count":${page.total},`}"value":[`
  const close = () =>
    more && topLeft > 0 && last !== undefined
      ? `],"@odata.nextLink":${JSON.stringify(nextLink(page.url, options, query.pageRows, positionToken(options, feed, last)))}}`
      : "]}"
  return jsonChunks(options.select, pageRows(), open, close)
}
