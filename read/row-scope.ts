import { catalogue } from "../projections/catalogue.ts"

/**
 * What rows of the store-scoped marts a reader sees (seed 002: store managers their store,
 * regional managers their region, executives everything). Postgres enforces it with row-level
 * security (projections/row-scope.ts); this module is its reader-facing side: parsing it from
 * flags, and the text the read API sets on each connection it reads with.
 */
export type RowScope =
  { readonly allRows: true } | { readonly allRows: false; readonly stores: ReadonlyArray<string>; readonly regions: ReadonlyArray<string> }

export const ALL_ROWS: RowScope = { allRows: true }

/** A scope that sees no row of a scoped mart (a key check, a request before its key is known). */
export const NO_ROWS: RowScope = { allRows: false, stores: [], regions: [] }

/** The marts whose rows are scoped by store (the retail mart): a key or login reading them says what it sees. */
export const scopedMarts: ReadonlyArray<string> = catalogue.filter((marts) => marts.rowScope !== undefined).map((marts) => marts.name)

/** Whether a key scoped to `marts` (a name, or `*` for all) reads a mart whose rows are scoped. */
export const readsScopedRows = (marts: ReadonlyArray<string>): boolean => marts.some((mart) => mart === "*" || scopedMarts.includes(mart))

const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

const listOf = (flag: string, value: string | undefined, check: (item: string) => string | undefined): ReadonlyArray<string> => {
  if (value === undefined) return []
  const items = value.split(",").map((item) => item.trim())
  if (items.some((item) => item === ""))
    throw new Error(`--${flag} ${JSON.stringify(value)} has an empty entry; give a comma-separated list`)
  for (const item of items) {
    const problem = check(item)
    if (problem !== undefined) throw new Error(`--${flag}: ${JSON.stringify(item)} ${problem}`)
  }
  return [...new Set(items)]
}

/**
 * The scope `--stores 47,48`, `--regions Northeast` and `--all-rows` describe (stores and regions
 * may be given together: the union), or undefined when none is given. `--all-rows` with either
 * list is a contradiction and refused.
 */
export const parseRowScope = (flags: {
  readonly stores?: string | undefined
  readonly regions?: string | undefined
  readonly allRows?: boolean | undefined
}): RowScope | undefined => {
  const stores = listOf("stores", flags.stores, (store) =>
    STORE_ID.test(store) ? undefined : "is not a store id (letters, digits and . _ : -, e.g. 47)"
  )
  const regions = listOf("regions", flags.regions, (region) => (region.length <= 200 ? undefined : "is longer than 200 characters"))
  if (flags.allRows === true) {
    if (stores.length > 0 || regions.length > 0) throw new Error("--all-rows sees every row: give it without --stores or --regions")
    return ALL_ROWS
  }
  if (stores.length === 0 && regions.length === 0) return undefined
  return { allRows: false, stores, regions }
}

/** The scope in words, for `keys list` and logs. */
export const describeRowScope = (scope: RowScope): string =>
  scope.allRows
    ? "all rows"
    : [
        scope.stores.length > 0 ? `stores ${scope.stores.join(",")}` : "",
        scope.regions.length > 0 ? `regions ${scope.regions.join(",")}` : ""
      ]
        .filter((part) => part !== "")
        .join(" + ") || "no rows"

/** The session setting the read API's login sets for each request ({@link READER_SCOPE_SETTING}): JSON the scope function reads. */
export const sessionScope = (scope: RowScope): string =>
  JSON.stringify(scope.allRows ? { all_rows: true } : { all_rows: false, stores: scope.stores, regions: scope.regions })

/**
 * The setting that carries a request's scope on the read API's connection. Only the API's own
 * login is trusted to set it: for every other login the scope function ignores it and reads the
 * scope the login was created with, so a BI user's `SET` changes nothing.
 */
export const READER_SCOPE_SETTING = "ingest.row_scope"
