import { readFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type postgres from "postgres"
import { NotFound } from "./errors.ts"

/** A name and how many successful erasures it had that day. */
export interface DeviceTypeCount {
  readonly device_type: string
  readonly count: number
}

/**
 * Seed 000's stats page figures for one UTC day: booked in, erased, QA, and erasures per engineer
 * and per device type (successful erasures, as `erased` counts them).
 */
export interface WarehouseDay {
  readonly date: string
  readonly booked_in: number
  readonly erased: number
  readonly qa: number
  readonly engineers: ReadonlyArray<{ readonly initials: string; readonly count: number }>
  readonly device_types: ReadonlyArray<DeviceTypeCount>
}

/** The warehouse mart's figures for `day` (`YYYY-MM-DD`): zeros for a day nothing was booked. */
export const warehouseDay = async (sql: postgres.Sql, day: string): Promise<WarehouseDay> => {
  const [stats] = await sql`SELECT booked_in, erased, qa FROM mart_warehouse.daily_stats WHERE date = ${day}::date`
  const engineers =
    await sql`SELECT initials, count FROM mart_warehouse.engineer_stats WHERE date = ${day}::date ORDER BY count DESC, initials`
  // engineer_stats_type holds each day's successful erasures by engineer and device type: its sum per type is the day's by type.
  const deviceTypes = await sql`SELECT device_type, sum(count)::int AS count FROM mart_warehouse.engineer_stats_type
    WHERE date = ${day}::date GROUP BY device_type ORDER BY count DESC, device_type`
  return {
    date: day,
    booked_in: (stats?.booked_in as number | undefined) ?? 0,
    erased: (stats?.erased as number | undefined) ?? 0,
    qa: (stats?.qa as number | undefined) ?? 0,
    engineers: engineers.map((row) => ({ initials: row.initials as string, count: row.count as number })),
    device_types: deviceTypes.map((row) => ({ device_type: row.device_type as string, count: row.count as number }))
  }
}

/** The stats page's folder: its HTML, script and stylesheet, which hold no data (the script reads `/metrics/*` with a key). */
export const STATS_PAGE_FOLDER = join(dirname(fileURLToPath(import.meta.url)), "pages")

/** The files served under `/stats/assets/`, by name, with their media types: nothing else in the folder is served. */
export const STATS_ASSETS: Readonly<Record<string, string>> = {
  "stats.js": "text/javascript; charset=utf-8",
  "stats-view.js": "text/javascript; charset=utf-8",
  "stats.css": "text/css; charset=utf-8"
}

/** The media type of stats page asset `file`, or undefined when it is not one (any other name, a path, `..`). */
export const statsAssetType = (file: string): string | undefined => (Object.hasOwn(STATS_ASSETS, file) ? STATS_ASSETS[file] : undefined)

/** GET /stats: the page, served without a key. */
export const statsPage = async (): Promise<Response> =>
  new Response(await readFile(join(STATS_PAGE_FOLDER, "stats.html")), {
    headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache" }
  })

/** GET /stats/assets/:file: the page's script or stylesheet. */
export const statsAsset = async (file: string): Promise<Response> => {
  const type = statsAssetType(file)
  if (type === undefined)
    throw new NotFound({ message: `no stats page asset ${JSON.stringify(file)}; the assets are ${Object.keys(STATS_ASSETS).join(", ")}` })
  return new Response(await readFile(join(STATS_PAGE_FOLDER, file)), { headers: { "Content-Type": type, "Cache-Control": "no-cache" } })
}
