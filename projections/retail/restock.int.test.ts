import { jetstream } from "@nats-io/jetstream"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DERIVED_STREAM } from "../../contracts/log.ts"
import { publishOutbox, pruneOutbox } from "../../consumers/outbox.ts"
import { rebuildProjection } from "../../consumers/rebuild.ts"
import { appendAsEdge } from "../../infra/local/append.ts"
import { type LogStack, startLogStack } from "../../infra/local/log-stack.ts"
import { retailProjection } from "./projection.ts"

const projection = retailProjection({ latenessMs: 10 * 60_000 })
const count = (n: number, minute: number, quantity: number) => ({
  id: `count_${n}`,
  type: "inventory.updated",
  timestamp: new Date(Date.parse("2025-01-15T08:00:00Z") + minute * 60_000).toISOString(),
  data: { store_id: "47", product_id: "SKU123", quantity_on_hand: quantity, reorder_point: 20 }
})

/** 30 → 18 (crosses) → 12 (still below) → an older count of 5 arriving late → 25 (back above) → 10 (crosses again). */
const COUNTS = [count(1, 0, 30), count(2, 10, 18), count(3, 20, 12), count(4, 15, 5), count(5, 30, 25), count(6, 40, 10)]

let stack: LogStack
let sql: postgres.Sql

const runUntilCaughtUp = (publishEffects: boolean) => stack.projectToHead(sql, projection, { publishEffects })
const alertsInLog = async () => (await stack.jsm.streams.info(DERIVED_STREAM)).state.messages

beforeAll(async () => {
  stack = await startLogStack()
  ;({ sql } = await stack.database())
  await appendAsEdge(stack.js, "pos", COUNTS)
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

describe("restock alerts published back to the log", () => {
  it("are recorded with the marts' commit, and survive a crash before they were published", async () => {
    await runUntilCaughtUp(false)
    expect(await alertsInLog()).toBe(0)
    expect((await sql`SELECT count(*)::int AS n FROM ingest.outbox WHERE published_at IS NULL`)[0]?.n).toBe(2)
  })

  it("come out exactly once per crossing when the consumer restarts", async () => {
    await runUntilCaughtUp(true)
    expect(await alertsInLog()).toBe(2)
    const alerts = await Promise.all([1, 2].map((seq) => stack.jsm.streams.getMessage(DERIVED_STREAM, { seq })))
    expect(alerts.map((message) => [message?.subject, (message?.json() as { quantity_on_hand: number }).quantity_on_hand])).toEqual([
      ["derived.retail.restock", 18],
      ["derived.retail.restock", 10]
    ])
  })

  it("are not doubled by a crash between the PubAck and marking them published", async () => {
    await sql`UPDATE ingest.outbox SET published_at = NULL`
    expect(await publishOutbox(sql, jetstream(stack.projector), "retail")).toBe(2)
    expect(await alertsInLog()).toBe(2)
  })

  it("are not raised again by a rebuild", async () => {
    await rebuildProjection({ sql, nc: stack.projector, projection })
    expect(await alertsInLog()).toBe(2)
    expect((await sql`SELECT count(*)::int AS n FROM ingest.outbox`)[0]?.n).toBe(2)
    expect((await sql`SELECT quantity_on_hand FROM mart_retail.stock_level`)[0]?.quantity_on_hand).toBe(10)
  })

  it("are recorded for events the live consumer had not reached when a rebuild switched", async () => {
    await appendAsEdge(stack.js, "pos", [count(7, 50, 50), count(8, 60, 3)])
    await rebuildProjection({ sql, nc: stack.projector, projection })
    expect(await alertsInLog()).toBe(2)
    await runUntilCaughtUp(true)
    expect(await alertsInLog()).toBe(3)
    expect((await sql`SELECT quantity_on_hand FROM mart_retail.stock_level`)[0]?.quantity_on_hand).toBe(3)
  })

  it("are pruned from the outbox a week after they were published, never before and never while pending", async () => {
    await sql`UPDATE ingest.outbox SET published_at = now() - interval '8 days' WHERE id = (SELECT min(id) FROM ingest.outbox)`
    await sql`UPDATE ingest.outbox SET published_at = now() - interval '6 days' WHERE id = (SELECT max(id) FROM ingest.outbox)`
    const [{ before }] = (await sql`SELECT count(*)::int AS before FROM ingest.outbox WHERE projection = 'retail'`) as unknown as [
      { before: number }
    ]
    expect(await publishOutbox(sql, jetstream(stack.projector), "retail")).toBe(0)
    expect((await sql`SELECT count(*)::int AS n FROM ingest.outbox WHERE projection = 'retail'`)[0]?.n).toBe(before - 1)
    expect((await sql`SELECT count(*)::int AS n FROM ingest.outbox WHERE published_at < now() - interval '7 days'`)[0]?.n).toBe(0)
    // A side effect still waiting to be published is kept however old it is.
    await sql`INSERT INTO ingest.outbox (id, projection, seq, subject, data, created_at) VALUES ('old-pending', 'retail', 1, 'derived.retail.restock', '{}', now() - interval '30 days')`
    expect(await pruneOutbox(sql, "retail")).toBe(0)
    expect((await sql`SELECT count(*)::int AS n FROM ingest.outbox WHERE id = 'old-pending'`)[0]?.n).toBe(1)
  })
})
