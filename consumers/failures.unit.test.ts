import { Duration, Effect, Schedule } from "effect"
import { describe, expect, it } from "vitest"
import { backoffMs, CheckpointMoved, classifyFailure, fatal, isFailure, ourSideBackoff, PoisonInRebuild, shouldRetry } from "./failures.ts"

const postgresError = (code: string) => Object.assign(new Error(`pg ${code}`), { name: "PostgresError", code })
const named = (name: string, cause?: unknown) => Object.assign(new Error(name), { name, cause })

describe("what kind of failure an error is", () => {
  it("takes Postgres' refusals of values (SQLSTATE classes 22 and 23) for poison", () => {
    for (const code of ["22003", "22021", "22008", "23502", "23505"]) expect(classifyFailure(postgresError(code)), code).toBe("poison")
  })

  it("takes a database or NATS that is away or busy for transient", () => {
    for (const code of ["08006", "40001", "40P01", "53300", "55P03", "57P01", "57P03"])
      expect(classifyFailure(postgresError(code)), code).toBe("transient")
    for (const code of ["ECONNREFUSED", "ECONNRESET", "CONNECTION_CLOSED", "CONNECT_TIMEOUT"])
      expect(classifyFailure(Object.assign(new Error(code), { code })), code).toBe("transient")
    for (const name of ["TimeoutError", "ConnectionError", "NoResponders"]) expect(classifyFailure(named(name)), name).toBe("transient")
  })

  it("takes what no retry mends for fatal, also when nats.js wraps it in a RequestError", () => {
    for (const code of ["42P01", "42501", "3F000"]) expect(classifyFailure(postgresError(code)), code).toBe("fatal")
    expect(classifyFailure(named("RequestError", named("PermissionViolationError")))).toBe("fatal")
    expect(classifyFailure(named("RequestError", named("TimeoutError")))).toBe("transient")
    expect(classifyFailure(named("StreamNotFoundError"))).toBe("fatal")
    expect(classifyFailure(fatal("x", "y"))).toBe("fatal")
  })

  it("retries transient failures always, unknown ones five times, poison and fatal ones never", () => {
    expect(classifyFailure(new TypeError("x is undefined"))).toBe("unknown")
    expect([0, 100, 10_000].every((attempt) => shouldRetry("transient", attempt))).toBe(true)
    expect([0, 1, 2, 3, 4, 5].map((attempt) => shouldRetry("unknown", attempt))).toEqual([true, true, true, true, false, false])
    expect([shouldRetry("poison", 0), shouldRetry("fatal", 0)]).toEqual([false, false])
  })

  it("waits between retries as the backoff says: 100 ms doubling to 5 s", async () => {
    const delays = await Effect.runPromise(
      Effect.gen(function* () {
        const step = yield* Schedule.toStep(ourSideBackoff)
        const out: Array<number> = []
        for (let i = 0; i < 9; i++) out.push(Duration.toMillis((yield* step(Date.now(), undefined))[1]))
        return out
      })
    )
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000])
    expect(delays).toEqual(delays.map((_, attempt) => backoffMs(attempt)))
  })

  it("tells the runtime's expected outcomes by their tag, and takes a rebuild's poison for fatal", () => {
    const moved = new CheckpointMoved({ generation: 2, found: 40, status: "active" })
    const poison = new PoisonInRebuild({ seq: 7, subject: "ingest.warehouse.erasure.x", dedupeKey: "erasure:a", reason: "bad" })
    expect([
      isFailure(moved, "CheckpointMoved"),
      isFailure(poison, "CheckpointMoved"),
      isFailure(new Error("x"), "CheckpointMoved")
    ]).toEqual([true, false, false])
    expect(moved.message).toBe("generation 2 is at checkpoint 40 (active); expected to continue from ours")
    expect(poison.message).toMatch(
      /^event seq 7 \(ingest.warehouse.erasure.x, key erasure:a\) cannot be projected: bad; the live marts are untouched/
    )
    expect([classifyFailure(poison), classifyFailure(moved)]).toEqual(["fatal", "unknown"])
    expect(fatal("the marts are newer", "deploy the new code").message).toBe("the marts are newer; deploy the new code")
  })
})
