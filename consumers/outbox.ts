import type { JetStreamClient } from "@nats-io/jetstream"
import type postgres from "postgres"
import { logEvent } from "../infra/logger.ts"

/**
 * Publishes a projection's pending side effects to the log, oldest first, each with its id as
 * `Nats-Msg-Id`, and marks them published after the PubAck. A crash between the batch's commit and
 * the publish leaves them pending for the next run; a crash between the PubAck and the mark
 * republishes with the same id, which JetStream drops as a duplicate. Returns how many it published.
 */
export const publishOutbox = async (sql: postgres.Sql, js: JetStreamClient, projection: string, limit = 500): Promise<number> => {
  const pending = await sql`SELECT id, subject, data FROM ingest.outbox WHERE projection = ${projection} AND published_at IS NULL ORDER BY created_at, id LIMIT ${limit}`
  let published = 0
  for (const row of pending) {
    try {
      await js.publish(row.subject as string, row.data as string, { msgID: row.id as string })
    } catch (error) {
      logEvent("warn", "publishing a side effect failed; it stays pending", { projection, id: row.id, error: String(error) })
      break
    }
    await sql`UPDATE ingest.outbox SET published_at = now() WHERE id = ${row.id as string}`
    published++
  }
  return published
}
