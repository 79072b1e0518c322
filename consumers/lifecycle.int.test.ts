import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { spawnProjector } from "../infra/local/projector-process.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, retailEvents, warehouseWorkload } from "../infra/local/samples.ts"
import { projections } from "../projections/index.ts"
import { warehouseProjection } from "../projections/warehouse/projection.ts"
import { applyBatch } from "./apply.ts"
import { FatalFailure } from "./failures.ts"
import { rebuildProjection } from "./rebuild.ts"
import { activeGeneration, ensureActiveGeneration, generations } from "./registry.ts"
import { ensureRuntimeTables } from "./runtime-tables.ts"
import { runLive } from "./runtime.ts"

let stack: LogStack

beforeAll(async () => {
  stack = await startLogStack()
  await appendAsEdge(stack.js, "erasure", [...erasureEvents(20), ...warehouseWorkload(400)])
  await appendAsEdge(stack.js, "hubspot", hubspotBatch(20))
  await appendAsEdge(stack.js, "aloware", [alowareCall(1)])
  await appendAsEdge(stack.js, "oee", oeeEvents())
  await appendAsEdge(stack.js, "pos", retailEvents())
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

const registryOf = async (sql: postgres.Sql) =>
  (await sql`SELECT name, status FROM ingest.projections ORDER BY name, generation`).map((row) => `${row.name}:${row.status}`)

describe("a fresh database with every projection starting at once", () => {
  it("gets one active generation per projection, however many connections race to make them", async () => {
    for (let round = 0; round < 3; round++) {
      const { url } = await stack.database()
      const pools = Array.from({ length: 4 }, () => postgres(url, { max: 2, onnotice: () => {} }))
      try {
        await Promise.all(
          pools.flatMap((pool) =>
            Object.values(projections).map(async (projection) => {
              await ensureRuntimeTables(pool)
              return ensureActiveGeneration(pool, projection)
            })
          )
        )
        expect(await registryOf(pools[0] as postgres.Sql)).toEqual([
          "crm:active",
          "oee:active",
          "reports:active",
          "retail:active",
          "warehouse:active"
        ])
      } finally {
        await Promise.all(pools.map((pool) => pool.end()))
      }
    }
  })

  it("started as three `mesh project` processes together, projects with each of them and leaves nothing building", async () => {
    const { url, sql } = await stack.database()
    const names = Object.keys(projections)
    const processes = Array.from({ length: 3 }, () => spawnProjector({ nats: stack.nats, databaseUrl: url, names }))
    try {
      await Promise.all(
        processes.map((process) =>
          Promise.all(names.map((name) => process.waitFor((line) => line.msg === "projecting" && line.projection === name)))
        )
      )
      expect(await registryOf(sql)).toEqual(["crm:active", "oee:active", "reports:active", "retail:active", "warehouse:active"])
    } finally {
      for (const process of processes) process.child.kill("SIGTERM")
      const codes = await Promise.all(processes.map((process) => process.exited))
      expect(codes, processes.map((process) => process.stderr()).join("\n")).toEqual([0, 0, 0])
    }
  }, 120_000)
})

describe("marts built by a newer version of a projection", () => {
  it("make `mesh project` exit non-zero with a message saying to deploy the new code, stopping its other projections too", async () => {
    const { url, sql } = await stack.database()
    await stack.projectToHead(sql, warehouseProjection)
    await sql`UPDATE ingest.projections SET version = ${warehouseProjection.version + 1} WHERE name = 'warehouse'`
    const projector = spawnProjector({ nats: stack.nats, databaseUrl: url, names: ["crm", "warehouse"] })
    expect(await projector.exited).toBe(1)
    expect(projector.stderr()).toMatch(
      /the warehouse marts \(generation built by version 2 of the projection\) are newer than this process's code \(version 1\); stop this process and deploy the new code/
    )
  }, 60_000)

  it("stop a live consumer of the old version once a rebuild by the new version switched readers over, and it writes nothing into them", async () => {
    const { sql } = await stack.database()
    await stack.projectToHead(sql, warehouseProjection)
    const states: Array<string> = []
    const stop = new AbortController()
    const live = runLive({
      sql,
      nc: stack.projector,
      projection: warehouseProjection,
      signal: stop.signal,
      onState: (state) => states.push(state)
    })
    const newer = { ...warehouseProjection, version: warehouseProjection.version + 1 }
    const rebuilt = await rebuildProjection({ sql, nc: stack.projector, projection: newer })
    await expect(live).rejects.toThrow(FatalFailure)
    await expect(live).rejects.toThrow(/newer than this process's code/)
    expect(states.at(-1)).toBe("failed")
    const generation = await activeGeneration(sql, "warehouse")
    expect(generation).toMatchObject({ generation: rebuilt.generation, version: newer.version })
    await expect(
      applyBatch(sql, warehouseProjection, generation as NonNullable<typeof generation>, generation?.checkpoint ?? 0, [], "live")
    ).rejects.toThrow(/deploy the new code/)
    await expect(rebuildProjection({ sql, nc: stack.projector, projection: warehouseProjection })).rejects.toThrow(
      /newer than this process's code/
    )
    expect((await generations(sql, "warehouse")).map((g) => g.status)).toEqual(["active"])
    stop.abort()
  }, 60_000)
})
