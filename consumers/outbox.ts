import type { JetStreamClient } from "@nats-io/jetstream"
import type postgres from "postgres"
import { logEvent } from "../platform/logger.ts"

/**
 * Publishes a projection's pending side effects to the log, oldest first, each with its id as
 * `Nats-Msg-Id`, and marks them published after the PubAck. A crash between the batch's commit and
 * the publish leaves them pending for the next run; a crash between the PubAck and the mark
 * republishes with the same id, which JetStream drops as a duplicate as long as it comes within the
 * stream's duplicate window. Published in log order; drains the whole backlog. Returns how many.
 */
export const publishOutbox = async (sql: postgres.Sql, js: JetStreamClient, projection: string, limit = 500): Promise<number> => {
  let total = 0
  for (;;) {
    const published = await publishSome(sql, js, projection, limit)
    total += published.count
    if (published.failed) return total
    if (published.count < limit) {
      await pruneOutbox(sql, projection)
      return total
    }
  }
}

/**
 * How long a published side effect stays in the outbox: long past the stream's duplicate window
 * (minutes), kept only to answer "was this sent, and when". Replays never re-create it: the dedupe
 * keys skip the event that caused it, and rebuilds record no side effects.
 */
export const OUTBOX_RETENTION_DAYS = 7

/** Deletes the projection's side effects published more than {@link OUTBOX_RETENTION_DAYS} ago. */
export const pruneOutbox = async (sql: postgres.Sql, projection: string): Promise<number> =>
  (
    await sql`DELETE FROM ingest.outbox WHERE projection = ${projection} AND published_at < now() - make_interval(days => ${OUTBOX_RETENTION_DAYS})`
  ).count

const publishSome = async (
  sql: postgres.Sql,
  js: JetStreamClient,
  projection: string,
  limit: number
): Promise<{ count: number; failed: boolean }> => {
  const pending =
    await sql`SELECT id, subject, data FROM ingest.outbox WHERE projection = ${projection} AND published_at IS NULL ORDER BY seq, id LIMIT ${limit}`
  let published = 0
  for (const row of pending) {
    try {
      await js.publish(row.subject as string, row.data as string, { msgID: row.id as string })
    } catch (error) {
      logEvent("warn", "publishing a side effect failed; it stays pending", { projection, id: row.id, error: String(error) })
      return { count: published, failed: true }
    }
    await sql`UPDATE ingest.outbox SET published_at = now() WHERE id = ${row.id as string}`
    published++
  }
  return { count: published, failed: false }
}
