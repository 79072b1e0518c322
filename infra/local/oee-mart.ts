import type postgres from "postgres"
import { activate } from "../../consumers/switch.ts"
import { createGeneration } from "../../consumers/registry.ts"
import { ensureRuntimeTables } from "../../consumers/runtime-tables.ts"
import { qualified } from "../../platform/sql.ts"
import { dataMartLoad, dataMartSources, SNAPSHOT_MINUTES } from "../../projections/oee/marts.ts"
import { oeeProjection } from "../../projections/oee/projection.ts"

/**
 * Fills an active generation of the OEE mart straight in SQL: `machines` machines on 5 lines, a
 * snapshot every 15 minutes for `slots` slots from `start`, and a 7-minute stop (alternately
 * planned) every 10th slot. For read-side tests and benchmarks that need hundreds of thousands of
 * rows in seconds; the projection tests show the same tables come from the log. Loaded as a bulk
 * rebuild would: the data mart's triggers off, then the data mart computed whole (`dataMartLoad`).
 */
export const seedOeeMart = async (
  sql: postgres.Sql,
  options: { readonly machines: number; readonly slots: number; readonly start: string }
): Promise<{ snapshots: number }> => {
  await ensureRuntimeTables(sql)
  const generation = await createGeneration(sql, oeeProjection)
  const t = (name: string) => qualified(generation.schema, name)
  const step = `interval '${SNAPSHOT_MINUTES} minutes'`
  for (const table of dataMartSources) await sql.unsafe(`ALTER TABLE ${t(table)} DISABLE TRIGGER USER`)
  await sql.unsafe(`INSERT INTO ${t("production_lines")} (id, name) SELECT 'L-' || l, 'Line ' || l FROM generate_series(0, 4) l`)
  await sql.unsafe(
    `INSERT INTO ${t("shifts")} (id, name, start_time, end_time) VALUES ('S-1', 'Early', '06:00', '14:00'), ('S-2', 'Late', '14:00', '22:00'), ('S-3', 'Night', '22:00', '06:00')`
  )
  await sql.unsafe(
    `INSERT INTO ${t("products")} (id, name, sku) SELECT 'PR-' || p, 'Product ' || p, 'SKU-' || p FROM generate_series(0, 9) p`
  )
  await sql.unsafe(
    `INSERT INTO ${t("work_orders")} (id, wo_number, product_id, status) SELECT 'WO-' || w, 'WO-2025-' || lpad(w::text, 4, '0'), 'PR-' || (w % 10), 'released' FROM generate_series(0, 19) w`
  )
  await sql.unsafe(
    `INSERT INTO ${t("machines")} (id, name, code, line_id) SELECT 'M-' || lpad(m::text, 2, '0'), 'Machine ' || m, 'MC' || m, 'L-' || (m % 5) FROM generate_series(0, $1::int - 1) m`,
    [options.machines]
  )
  await sql.unsafe(
    `INSERT INTO ${t("oee_snapshots")} (id, snapshot_time, machine_id, line_id, shift_id, work_order_id, oee_pct, availability_pct, performance_pct, quality_pct,
       total_pieces, good_pieces, rejected_pieces, planned_production_time, actual_production_time)
     SELECT 'snap-' || m || '-' || s, $3::timestamptz + s * ${step}, 'M-' || lpad(m::text, 2, '0'), 'L-' || (m % 5),
       CASE WHEN extract(hour FROM ($3::timestamptz + s * ${step}) AT TIME ZONE 'UTC') BETWEEN 6 AND 13 THEN 'S-1'
            WHEN extract(hour FROM ($3::timestamptz + s * ${step}) AT TIME ZONE 'UTC') BETWEEN 14 AND 21 THEN 'S-2' ELSE 'S-3' END,
       'WO-' || ((m + s / 96) % 20), 60 + (m * 7 + s) % 35 + 0.5, 90 + (s % 10), 85 + (m % 10), 97.5, 120, 116, 4, 15, 13.5
     FROM generate_series(0, $1::int - 1) m CROSS JOIN generate_series(0, $2::int - 1) s`,
    [options.machines, options.slots, options.start]
  )
  await sql.unsafe(
    `INSERT INTO ${t("oee_downtime_events")} (id, machine_id, line_id, start_time, end_time, duration_minutes, is_planned, reason, category, resolved)
     SELECT 'D-' || m || '-' || s, 'M-' || lpad(m::text, 2, '0'), 'L-' || (m % 5), $3::timestamptz + s * ${step} - interval '10 minutes',
       $3::timestamptz + s * ${step} - interval '3 minutes', 7, s % 20 = 0, 'jam', 'mechanical', true
     FROM generate_series(0, $1::int - 1) m CROSS JOIN generate_series(10, $2::int - 1, 10) s`,
    [options.machines, options.slots, options.start]
  )
  for (const table of dataMartSources) await sql.unsafe(`ALTER TABLE ${t(table)} ENABLE TRIGGER USER`)
  for (const table of oeeProjection.tables) await sql.unsafe(`ANALYZE ${t(table.name)}`)
  for (const statement of dataMartLoad(generation.schema)) await sql.unsafe(statement)
  await sql.begin((tx) => activate(tx, oeeProjection, generation))
  return { snapshots: options.machines * options.slots }
}

/**
 * `count` snapshots for `machine` a minute apart from `from`, ids `<prefix><n>`, written straight
 * into the active OEE generation (for read-side tests that need rows beyond what they projected);
 * `remove` deletes them again.
 */
export const addSnapshots = async (
  sql: postgres.Sql,
  options: { readonly prefix: string; readonly from: string; readonly count: number; readonly machine: string }
) => {
  const [{ schema }] =
    (await sql`SELECT schema_name AS schema FROM ingest.projections WHERE name = 'oee' AND status = 'active'`) as unknown as [
      { schema: string }
    ]
  await sql.unsafe(
    `INSERT INTO ${qualified(schema, "oee_snapshots")} (id, snapshot_time, machine_id, oee_pct, availability_pct, performance_pct, quality_pct, total_pieces, good_pieces, rejected_pieces, planned_production_time, actual_production_time)
     SELECT $1::text || g, $2::timestamptz + g * interval '1 minute', $4::text, 50, 50, 50, 50, 1, 1, 0, 15, 15 FROM generate_series(1, $3::int) g`,
    [options.prefix, options.from, options.count, options.machine]
  )
  return { remove: () => sql.unsafe(`DELETE FROM ${qualified(schema, "oee_snapshots")} WHERE starts_with(id, $1::text)`, [options.prefix]) }
}
