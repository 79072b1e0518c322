import { catalogue, publishedObjects } from "../projections/catalogue.ts"
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

/** Every mart's feeds, by mart name, from the projections' catalogue (data only: no projection code runs). */
export const martFeeds: Readonly<Record<string, ReadonlyArray<Feed>>> = Object.fromEntries(
  catalogue.map((marts) => [
    marts.name,
    publishedObjects(marts).map((object) => {
      const time = timeColumn(object.columns)
      return { ...object, ...(time === undefined ? {} : { time }) }
    })
  ])
)

export const marts: ReadonlyArray<string> = Object.keys(martFeeds)

export const findFeed = (mart: string, name: string): Feed | undefined => martFeeds[mart]?.find((feed) => feed.name === name)
