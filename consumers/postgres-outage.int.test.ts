import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { martSnapshot } from "../infra/local/marts.ts"
import { warehouseWorkload } from "../infra/local/samples.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { freePort } from "../infra/ports.ts"
import { serveProjections } from "./serve.ts"

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

  it("says so on /healthz and in the state metric while it waits, and is healthy again once Postgres is back", async () => {
    const { sql } = await stack.database()
    const port = await freePort()
    const stop = new AbortController()
    const served = serveProjections({
      sql,
      nc: stack.projector,
      jsm: stack.jsm,
      projections: [warehouseProjection],
      signal: stop.signal,
      metricsPort: port
    })
    const health = async () => {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
      return response === undefined
        ? undefined
        : {
            status: response.status,
            body: (await response.json()) as { status: string; projections: Record<string, { state: string; detail?: string }> }
          }
    }
    /** Asks /healthz until `accept` takes its answer; each ask is a real request, nothing is slept on. */
    const until = async (accept: (answer: Awaited<ReturnType<typeof health>>) => boolean) => {
      for (;;) {
        const answer = await health()
        if (accept(answer)) return answer
        await new Promise((resolveSoon) => setImmediate(resolveSoon))
      }
    }
    try {
      expect((await until((answer) => answer?.status === 200))?.body).toMatchObject({
        status: "ok",
        projections: { warehouse: { state: "running" } }
      })
      await stack.pg.stop()
      const down = await until((answer) => answer?.status === 503)
      expect(down?.body).toMatchObject({
        status: "degraded",
        projections: {
          warehouse: { state: "retrying", detail: expect.stringMatching(/ECONNREFUSED|ECONNRESET|CONNECTION|terminat|shut/i) }
        }
      })
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      expect(metrics).toContain('ingest_projection_state{projection="warehouse",state="retrying"} 1')
      await stack.pg.start()
      expect((await until((answer) => answer?.status === 200))?.body.status).toBe("ok")
    } finally {
      stop.abort()
      await served
    }
  }, 180_000)
})
