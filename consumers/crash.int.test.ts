import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { spawnProjector } from "../infra/local/projector-process.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"

const EVENTS = 10_000
const KILLS = 20

let stack: LogStack
let head = 0

beforeAll(async () => {
  stack = await startLogStack()
  const workload = warehouseWorkload(EVENTS)
  head = await appendAsEdge(stack.js, "erasure", workload)
  // Every 10th event again, under another message id: resends that came after the dedupe window.
  head = await appendAsEdge(
    stack.js,
    "erasure",
    workload.filter((_, i) => i % 10 === 0),
    { messageId: (message) => `${message.msgId}:late-resend` }
  )
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

describe("a consumer killed with SIGKILL at random points", () => {
  it(`leaves the warehouse marts equal to a clean run after ${KILLS} kills over ${EVENTS} events`, async () => {
    const reference = await stack.database()
    const crashed = await stack.database()
    await stack.projectToHead(reference.sql, warehouseProjection)
    const expected = await martSnapshot(reference.sql, warehouseProjection)
    expect((expected.erasures as Array<string>).length).toBe(EVENTS - 2 * Math.ceil(EVENTS / 25))

    let kills = 0
    const batchesBetweenKills = () => 1 + Math.floor(Math.random() * 2)
    while (kills < KILLS) {
      const projector = spawnProjector({ nats: stack.nats, databaseUrl: crashed.url, names: ["warehouse"], batchSize: 100 })
      let committed = 0
      const target = batchesBetweenKills()
      await projector.waitFor((line) => line.msg === "batch committed" && ++committed >= target)
      // Land the kill anywhere: between batches, inside a transaction, before an ack.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)))
      projector.child.kill("SIGKILL")
      await projector.exited
      kills++
    }

    const final = spawnProjector({ nats: stack.nats, databaseUrl: crashed.url, names: ["warehouse"], batchSize: 100 })
    await final.waitFor((line) => line.msg === "batch committed" && Number(line.checkpoint) >= head)
    final.child.kill("SIGTERM")
    const code = await final.exited
    expect(code, final.stderr()).toBe(0)

    expect(await martSnapshot(crashed.sql, warehouseProjection)).toEqual(expected)
    const [state] = await crashed.sql`SELECT checkpoint FROM ingest.projections WHERE name = 'warehouse' AND status = 'active'`
    expect(Number(state?.checkpoint)).toBe(head)
    expect(kills).toBe(KILLS)
  }, 300_000)
})
