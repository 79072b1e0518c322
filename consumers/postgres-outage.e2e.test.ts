import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { warehouseProjection } from "../projections/warehouse.ts"

let stack: LogStack

beforeAll(async () => {
  // This test stops and restarts Postgres, so it always runs its own.
  stack = await startLogStack({ postgres: { forceEmbedded: true } })
  await appendAsEdge(stack.js, "erasure", warehouseWorkload(3000))
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

describe("Postgres stopped and restarted mid-run", () => {
  it("makes the consumer wait and resume, and the marts come out exact", async () => {
    const reference = await stack.database()
    await stack.projectToHead(reference.sql, warehouseProjection, { batchSize: 100 })
    const expected = await martSnapshot(reference.sql, warehouseProjection)

    const interrupted = await stack.database()
    let retries = 0
    let sawRetries: () => void = () => {}
    const retried = new Promise<void>((resolve) => (sawRetries = resolve))
    let firstBatch: () => void = () => {}
    const started = new Promise<void>((resolve) => (firstBatch = resolve))
    const run = stack.projectToHead(interrupted.sql, warehouseProjection, {
      batchSize: 100,
      onBatch: () => firstBatch(),
      onRetry: () => {
        if (++retries === 3) sawRetries()
      }
    })
    await started
    await stack.pg.stop()
    await retried
    await stack.pg.start()
    await run

    expect(retries).toBeGreaterThanOrEqual(3)
    expect(await martSnapshot(interrupted.sql, warehouseProjection)).toEqual(expected)
  }, 180_000)
})
