import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { hubspotBatch, oeeWorkload, retailWorkload, warehouseWorkload } from "../infra/local/samples.ts"
import { projections } from "../projections/index.ts"
import type { Projection } from "../projections/projection.ts"
import { rebuildProjection } from "./rebuild.ts"
import { activeGeneration } from "./registry.ts"

/**
 * A rebuild's bulk load (COPY into staging, folded in SQL, counters summed in memory, indexes after)
 * leaves the same marts as live projection batch by batch and as a batch-by-batch rebuild, for
 * every projection, over logs with duplicates (a resend after the window: another Nats-Msg-Id,
 * the same dedupe key) and rows that change (upserts, latest-wins, counters).
 */

let stack: LogStack

const workloads: ReadonlyArray<{ projection: Projection; source: string; payloads: ReadonlyArray<unknown> }> = [
  { projection: projections.warehouse as Projection, source: "erasure", payloads: warehouseWorkload(4000) },
  { projection: projections.crm as Projection, source: "hubspot", payloads: hubspotBatch(1500) },
  { projection: projections.oee as Projection, source: "oee", payloads: oeeWorkload(3000) },
  { projection: projections.retail as Projection, source: "pos", payloads: retailWorkload(3000) }
]

beforeAll(async () => {
  stack = await startLogStack()
  for (const { source, payloads } of workloads) {
    await appendAsEdge(stack.js, source, payloads)
    // Every 7th event again, as a resend the stream's duplicate window no longer caught.
    await appendAsEdge(
      stack.js,
      source,
      payloads.filter((_, i) => i % 7 === 0),
      { messageId: (message, i) => `${message.msgId}:resent:${i}` }
    )
  }
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

describe("a rebuild as a bulk load", () => {
  for (const { projection } of workloads)
    it(`${projection.name}: equals live projection and a batch-by-batch rebuild, every published row`, async () => {
      const { sql } = await stack.database()
      await stack.projectToHead(sql, projection, { batchSize: 250 })
      const live = await martSnapshot(sql, projection)
      const position = (await activeGeneration(sql, projection.name))?.checkpoint

      const progress: Array<number> = []
      const bulk = await rebuildProjection({ sql, nc: stack.projector, projection, onProgress: (p) => progress.push(p.position) })
      expect(bulk.events).toBe(position)
      expect(progress.at(-1)).toBe(position)
      expect(await martSnapshot(sql, projection)).toEqual(live)
      // The rebuilt generation goes on live from where the load ended, with its ledger: a resend is still a duplicate.
      expect((await activeGeneration(sql, projection.name))?.checkpoint).toBe(position)
      const [ledger] = await sql.unsafe(
        `SELECT count(*)::int AS keys, count(DISTINCT key)::int AS distinct_keys FROM proj_${projection.name}_g${bulk.generation}.dedupe_keys`
      )
      expect(ledger?.keys).toBe(ledger?.distinct_keys)

      await rebuildProjection({ sql, nc: stack.projector, projection, bulk: false, batchSize: 300 })
      expect(await martSnapshot(sql, projection)).toEqual(live)
    }, 120_000)
})
