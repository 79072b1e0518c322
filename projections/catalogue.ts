import { crmMarts } from "./crm/marts.ts"
import { oeeMarts } from "./oee/marts.ts"
import { reportsMarts } from "./reports/marts.ts"
import { retailMarts } from "./retail/marts.ts"
import type { Column, MartSet } from "./table.ts"
import { warehouseMarts } from "./warehouse/marts.ts"

/**
 * What readers can see of the marts, as data: each projection's published tables and views with
 * their columns and keys. The read side builds its feeds from this alone, without loading any
 * projection code.
 */
export const catalogue: ReadonlyArray<MartSet> = [warehouseMarts, crmMarts, oeeMarts, retailMarts, reportsMarts]

/**
 * The schema a projection publishes its marts in, `mart_<name>`: each domain its own namespace, so
 * two domains' `dim_date` never meet in one name.
 */
export const publishedSchema = (marts: Pick<MartSet, "name">): string => `mart_${marts.name}`

/** The read-only role readers of the marts are members of: granted SELECT on every published view when it exists. */
export const READER_ROLE = "ingest_reader"

/** One published object's shape: a table's or a view's columns, in order, and its key. */
export interface PublishedObject {
  readonly mart: string
  readonly name: string
  readonly columns: ReadonlyArray<Column>
  readonly key: ReadonlyArray<string>
}

/** The objects a mart set publishes, in order; a name it publishes without declaring its shape is an error. */
export const publishedObjects = (marts: MartSet): ReadonlyArray<PublishedObject> =>
  marts.published.map((name) => {
    const shape = marts.tables.find((table) => table.name === name) ?? marts.views?.find((view) => view.name === name)
    if (shape === undefined)
      throw new Error(`mart set ${marts.name} publishes ${name} but declares neither a table nor a view of that name`)
    return { mart: marts.name, name, columns: shape.columns, key: shape.key }
  })

/** Names published by more than one mart set (into one schema), or by one twice: none may be. */
export const publishedClashes = (sets: ReadonlyArray<Pick<MartSet, "name" | "published">>): ReadonlyArray<string> => {
  const seen = new Map<string, number>()
  for (const marts of sets)
    for (const name of marts.published) {
      const qualified = `${publishedSchema(marts)}.${name}`
      seen.set(qualified, (seen.get(qualified) ?? 0) + 1)
    }
  return [...seen].filter(([, count]) => count > 1).map(([name]) => name)
}
