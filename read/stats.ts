import type postgres from "postgres"

/** Seed 000's stats page figures for one UTC day: booked in, erased, QA, and erasures per engineer. */
export interface WarehouseDay {
  readonly date: string
  readonly booked_in: number
  readonly erased: number
  readonly qa: number
  readonly engineers: ReadonlyArray<{ readonly initials: string; readonly count: number }>
}

/** The warehouse mart's figures for `day` (`YYYY-MM-DD`): zeros for a day nothing was booked. */
export const warehouseDay = async (sql: postgres.Sql, day: string): Promise<WarehouseDay> => {
  const [stats] = await sql`SELECT booked_in, erased, qa FROM mart_warehouse.daily_stats WHERE date = ${day}::date`
  const engineers =
    await sql`SELECT initials, count FROM mart_warehouse.engineer_stats WHERE date = ${day}::date ORDER BY count DESC, initials`
  return {
    date: day,
    booked_in: (stats?.booked_in as number | undefined) ?? 0,
    erased: (stats?.erased as number | undefined) ?? 0,
    qa: (stats?.qa as number | undefined) ?? 0,
    engineers: engineers.map((row) => ({ initials: row.initials as string, count: row.count as number }))
  }
}
