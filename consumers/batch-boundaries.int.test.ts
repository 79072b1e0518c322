import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { headers as natsHeaders } from "@nats-io/nats-core"
import { LogHeaders } from "../contracts/log.ts"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { erasureEvents } from "../infra/local/samples.ts"
import type { Projection } from "../projections/projection.ts"
import { retailProjection } from "../projections/retail/projection.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"

const retail = retailProjection({ latenessMs: 10 * 60_000 })
let stack: LogStack

/** Sales at prices binary floating point cannot hold exactly, and stock counts that cross twice. */
const posEvents = () => [
  ...Array.from({ length: 30 }, (_, i) => ({
    id: `sale_${i}`,
    type: "sale.completed",
    timestamp: new Date(Date.parse("2025-01-15T12:00:00Z") + i * 20_000).toISOString(),
    data: { sale_id: `S${i}`, store_id: "47", product_id: "SKU1", quantity: 1 + (i % 3), unit_price: 0.1 }
  })),
  ...[30, 25, 10, 12, 40, 5].map((quantity, i) => ({
    id: `count_${i}`,
    type: "inventory.updated",
    timestamp: new Date(Date.parse("2025-01-15T12:00:00Z") + i * 60_000).toISOString(),
    data: { store_id: "47", product_id: "SKU1", quantity_on_hand: quantity, reorder_point: 20 }
  }))
]

beforeAll(async () => {
  stack = await startLogStack()
  // A poison copy of era_7 before the valid one: the valid one must count, whatever the batches.
  const h = natsHeaders()
  h.set(LogHeaders.source, "erasure")
  h.set(LogHeaders.key, "era_7")
  h.set(LogHeaders.schema, "warehouse/v1")
  await stack.js.publish(
    "ingest.warehouse.erasure.erasure_success",
    '{"id":"era_7","type":"erasure.success","timestamp":"2025-01-15T08:00:00Z","data":{}}',
    { headers: h }
  )
  await appendAsEdge(stack.js, "erasure", erasureEvents(12, { firstId: 1 }))
  await appendAsEdge(stack.js, "pos", posEvents())
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

const projectWithBatches = async (projection: Projection, batchSize: number) => {
  const { sql } = await stack.database()
  await stack.projectToHead(sql, projection, { batchSize })
  const alerts = await sql`SELECT id FROM ingest.outbox ORDER BY seq`
  return { marts: await martSnapshot(sql, projection), alerts: alerts.map((row) => row.id as string), sql }
}

describe("the same log projected with different batch sizes", () => {
  it("gives the same warehouse marts, counting a valid event after a poison copy of its key", async () => {
    const one = await projectWithBatches(warehouseProjection, 1)
    const many = await projectWithBatches(warehouseProjection, 500)
    expect(many.marts).toEqual(one.marts)
    expect((one.marts.erasures as Array<string>).filter((row) => row.includes('"era_7"'))).toHaveLength(1)
  })

  it("gives the same retail sums to the cent and the same restock alerts", async () => {
    const one = await projectWithBatches(retail, 1)
    const many = await projectWithBatches(retail, 500)
    expect(many.marts).toEqual(one.marts)
    expect(many.alerts).toEqual(one.alerts)
    expect(one.alerts).toEqual(["restock:pos:count_2", "restock:pos:count_5"])
    // Appended now, the 2025 sales all arrived late: their sum is in the late column, exact.
    const [hour] = await one.sql`SELECT (revenue + late_revenue)::text AS revenue FROM mart_retail.revenue_per_hour`
    expect(hour?.revenue).toBe("6.0")
  })
})
