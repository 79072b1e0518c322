import { qualified } from "../../platform/sql.ts"
import type postgres from "postgres"
import { publishedSchema } from "../../projections/catalogue.ts"
import type { Projection } from "../../projections/projection.ts"

/** Every published mart of a projection, as sorted plain rows: two snapshots are equal iff the marts are. */
export const martSnapshot = async (sql: postgres.Sql, projection: Projection): Promise<Record<string, unknown>> => {
  const snapshot: Record<string, unknown> = {}
  for (const name of projection.published) {
    const rows = await sql.unsafe(`SELECT * FROM ${qualified(publishedSchema(projection), name)}`)
    snapshot[name] = rows.map((row) => JSON.stringify(row)).sort()
  }
  return snapshot
}
