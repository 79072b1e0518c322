import { projections } from "../projections/index.ts"
import type { Projection } from "../projections/projection.ts"
import type { Column } from "../projections/table.ts"

/**
 * One reader-facing object of a mart (`mart_<mart>.<name>`, a table or a view), with the shape every
 * format and the OData `$metadata` derive from: its columns in order, the columns that identify a
 * row (the paging order), and the column a date window filters on.
 */
export interface Feed {
  /** The projection (and API key scope) it belongs to: `warehouse`, `crm`, `oee`, `retail`. */
  readonly mart: string
  readonly name: string
  readonly columns: ReadonlyArray<Column>
  readonly key: ReadonlyArray<string>
  /** The first timestamp column, else the first date column: what `date_from`/`date_to` and RangeStart/RangeEnd filter. */
  readonly time?: Column
}

const timeColumn = (columns: ReadonlyArray<Column>): Column | undefined =>
  columns.find((column) => column.type === "timestamptz") ?? columns.find((column) => column.type === "date")

/** The feeds of one projection, in the order it publishes them. */
export const feedsOf = (projection: Projection): ReadonlyArray<Feed> =>
  projection.published.map((name) => {
    const shape = projection.tables.find((table) => table.name === name) ?? projection.views?.find((view) => view.name === name)
    if (shape === undefined) throw new Error(`projection ${projection.name} publishes ${name} but declares neither a table nor a view of that name`)
    const time = timeColumn(shape.columns)
    return { mart: projection.name, name, columns: shape.columns, key: shape.key, ...(time === undefined ? {} : { time }) }
  })

/** Every mart's feeds, by mart name. */
export const martFeeds: Readonly<Record<string, ReadonlyArray<Feed>>> = Object.fromEntries(Object.values(projections).map((projection) => [projection.name, feedsOf(projection)]))

export const marts: ReadonlyArray<string> = Object.keys(martFeeds)

export const findFeed = (mart: string, name: string): Feed | undefined => martFeeds[mart]?.find((feed) => feed.name === name)
