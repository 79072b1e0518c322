import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { streamFor } from "../contracts/log.ts"
import type { Projection } from "../projections/projection.ts"
import { activeGeneration, type Generation } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"
import { clientsOf } from "./runtime.ts"

/** Per projection: the generation readers see, its position against the stream head, and open dead letters. */
export const projectionStatus = async (sql: postgres.Sql, nc: NatsConnection, projections: ReadonlyArray<Projection>) => {
  await ensureRuntimeTables(sql)
  const clients = await clientsOf(nc)
  return Promise.all(
    projections.map(async (projection) => {
      const active: Generation | undefined = await activeGeneration(sql, projection.name)
      const head = (await clients.jsm.streams.info(streamFor(projection.domain))).state.last_seq
      const [letters] =
        await sql`SELECT count(*)::int AS open FROM ingest.dead_letters WHERE projection = ${projection.name} AND redriven_at IS NULL`
      const building =
        await sql`SELECT generation, checkpoint, switch_waiting_since, switch_attempts FROM ingest.projections WHERE name = ${projection.name} AND status = 'building'`
      return {
        projection: projection.name,
        generation: active?.generation ?? null,
        version:
          active === undefined
            ? null
            : `${active.version}${active.version === projection.version ? "" : ` (code is ${projection.version}: rebuild)`}`,
        schema: active?.schema ?? null,
        checkpoint: active?.checkpoint ?? 0,
        head,
        lag: Math.max(0, head - (active?.checkpoint ?? 0)),
        deadLetters: Number(letters?.open ?? 0),
        building: building.map((row) => ({
          generation: Number(row.generation),
          checkpoint: Number(row.checkpoint),
          // Set while the rebuild has caught up but readers of the old marts keep its switch waiting.
          switchWaitingSince: row.switch_waiting_since === null ? null : (row.switch_waiting_since as Date).toISOString(),
          switchAttempts: Number(row.switch_attempts)
        }))
      }
    })
  )
}
