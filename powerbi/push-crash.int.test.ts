import fc from "fast-check"
import type postgres from "postgres"
import { afterAll, describe, expect, it } from "vitest"
import { appendAsEdge } from "../infra/local/append.ts"
import { type LogStack, startLogStack } from "../infra/local/log-stack.ts"
import { LOCAL_WORKSPACE, type LocalPowerBi, mirrorOf, startLocalPowerBi } from "../infra/local/powerbi.ts"
import { runPusherProcess } from "../infra/local/pusher-process.ts"
import { alowareCall, hubspotBatch } from "../infra/local/samples.ts"
import { crmProjection } from "../projections/crm/projection.ts"
import { crmPushDataset } from "./datasets.ts"
import { ensurePushTables, pusher, type PushStep, pushStatus, recordDataset } from "./pusher.ts"
import { powerBiSink } from "./sink.ts"

/**
 * The push sink across crashes: a pusher process SIGKILLed at every step that matters (before a
 * POST, after a POST before it is recorded, after it is recorded, after a reload cleared a table)
 * and an emulator failing POSTs at random must leave Power BI's tables exactly equal to the marts.
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
console.log(`push crash tests: FUZZ_SEED=${SEED}`)

interface Mesh {
  readonly stack: LogStack
  readonly sql: postgres.Sql
  readonly url: string
  readonly powerbi: LocalPowerBi
  datasetId: string
}

const meshes: Array<Mesh> = []

const startMesh = async (faults?: { rate: number; seed: number }): Promise<Mesh> => {
  const stack = await startLogStack()
  const { sql, url } = await stack.database()
  // An emulated hour a second: the governor's pacing costs milliseconds, the limits still hold.
  const powerbi = await startLocalPowerBi({ speed: 3600, ...(faults === undefined ? {} : { faults }) })
  await ensurePushTables(sql)
  const report = await powerBiSink(powerbi.client(), LOCAL_WORKSPACE, crmPushDataset).provision(false)
  await recordDataset(sql, crmPushDataset, LOCAL_WORKSPACE, report.datasetId)
  const mesh = { stack, sql, url, powerbi, datasetId: report.datasetId }
  meshes.push(mesh)
  return mesh
}

afterAll(async () => {
  for (const mesh of meshes) {
    await mesh.powerbi.close()
    await mesh.stack.dispose()
  }
})

/** HubSpot events (3 in 4 a fact) on a day of their own per chunk, and now and then an Aloware agent renamed (a dimension row changed: a reload). */
const appendChunk = async (mesh: Mesh, chunk: number, events = 1000) => {
  await appendAsEdge(
    mesh.stack.js,
    "hubspot",
    hubspotBatch(events, { firstEventId: chunk * events + 1, occurredAt: 1_737_000_000_000 + chunk * 86_400_000 })
  )
  if (chunk % 4 === 1)
    await appendAsEdge(mesh.stack.js, "aloware", [
      { ...alowareCall(chunk), data: { ...alowareCall(chunk).data, user_name: `Dana ${chunk}` } }
    ])
  await mesh.stack.projectToHead(mesh.sql, crmProjection)
}

const expectMirror = async (mesh: Mesh) => {
  for (const { table, mart, pushed } of await mirrorOf(mesh.sql, mesh.powerbi.emulator, crmPushDataset, mesh.datasetId))
    expect({ table, rows: pushed.length, equal: pushed.join("\n") === mart.join("\n") }).toEqual({ table, rows: mart.length, equal: true })
}

const STEPS: ReadonlyArray<PushStep> = ["before-post", "after-post", "after-record", "after-clear"]

describe("the push sink across crashes", () => {
  it("leaves Power BI's tables exactly equal to the marts after 20 and more SIGKILLs at every step over 20,000 events", async () => {
    const mesh = await startMesh()
    const env = { ...mesh.powerbi.env, DATABASE_URL: mesh.url, POWERBI_METRICS_PORT: "0", POWERBI_POLL_MS: "10" }
    // Per chunk, one pusher killed at each step in a seeded order, then one that gets to the end.
    const orders = fc.sample(fc.shuffledSubarray([...STEPS], { minLength: STEPS.length }), { seed: SEED, numRuns: 20 })
    const killed = new Map<PushStep, number>(STEPS.map((step) => [step, 0]))
    for (let chunk = 0; chunk < 20; chunk++) {
      await appendChunk(mesh, chunk)
      for (const step of orders[chunk] as ReadonlyArray<PushStep>) {
        const run = await runPusherProcess(env, { step, occurrence: 1 })
        if (run.signal === "SIGKILL") killed.set(step, (killed.get(step) ?? 0) + 1)
        else expect(run, run.stderr).toMatchObject({ code: 0 })
      }
    }
    const clean = await runPusherProcess(env)
    expect(clean.code, clean.stderr).toBe(0)
    await expectMirror(mesh)
    const kills = [...killed.values()].reduce((sum, count) => sum + count, 0)
    console.log(`push crash tests: pushers killed ${JSON.stringify(Object.fromEntries(killed))}`)
    expect(kills).toBeGreaterThanOrEqual(20)
    for (const step of STEPS) expect({ step, killed: (killed.get(step) ?? 0) > 0 }).toEqual({ step, killed: true })
  }, 300_000)

  it("leaves them exactly equal with the emulator answering 429s, 500s (before and after storing the rows) and 503s at random", async () => {
    const mesh = await startMesh({ rate: 0.5, seed: SEED })
    const push = pusher({
      sql: mesh.sql,
      sink: powerBiSink(mesh.powerbi.client(), LOCAL_WORKSPACE, crmPushDataset, mesh.datasetId),
      spec: crmPushDataset,
      clock: mesh.powerbi.clock,
      sleep: mesh.powerbi.sleep
    })
    for (let chunk = 0; chunk < 16; chunk++) {
      await appendChunk(mesh, chunk, 500)
      for (let rounds = 0; ; rounds++) {
        expect(rounds, "a pusher that never gets to the end of its backlog").toBeLessThan(50)
        await push.round()
        if ((await pushStatus(mesh.sql)).every((row) => row.backlog === 0 && row.phase === "append")) break
      }
    }
    await expectMirror(mesh)
    const injected = mesh.powerbi.emulator.stats().injected
    for (const kind of ["429", "500-before", "500-after", "503"] as const)
      expect({ kind, injected: injected[kind] > 0 }).toEqual({ kind, injected: true })
    expect((await pushStatus(mesh.sql)).reduce((sum, row) => sum + row.uncertain, 0)).toBeGreaterThan(0)
  })
})
