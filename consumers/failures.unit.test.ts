import { describe, expect, it } from "vitest"
import { classifyFailure, FatalFailure, shouldRetry } from "./failures.ts"

const postgresError = (code: string) => Object.assign(new Error(`pg ${code}`), { name: "PostgresError", code })
const named = (name: string, cause?: unknown) => Object.assign(new Error(name), { name, cause })

describe("what kind of failure an error is", () => {
  it("takes Postgres' refusals of values (SQLSTATE classes 22 and 23) for poison", () => {
    for (const code of ["22003", "22021", "22008", "23502", "23505"]) expect(classifyFailure(postgresError(code)), code).toBe("poison")
  })

  it("takes a database or NATS that is away or busy for transient", () => {
    for (const code of ["08006", "40001", "40P01", "53300", "55P03", "57P01", "57P03"]) expect(classifyFailure(postgresError(code)), code).toBe("transient")
    for (const code of ["ECONNREFUSED", "ECONNRESET", "CONNECTION_CLOSED", "CONNECT_TIMEOUT"]) expect(classifyFailure(Object.assign(new Error(code), { code })), code).toBe("transient")
    for (const name of ["TimeoutError", "ConnectionError", "NoResponders"]) expect(classifyFailure(named(name)), name).toBe("transient")
  })

  it("takes what no retry mends for fatal, also when nats.js wraps it in a RequestError", () => {
    for (const code of ["42P01", "42501", "3F000"]) expect(classifyFailure(postgresError(code)), code).toBe("fatal")
    expect(classifyFailure(named("RequestError", named("PermissionViolationError")))).toBe("fatal")
    expect(classifyFailure(named("RequestError", named("TimeoutError")))).toBe("transient")
    expect(classifyFailure(named("StreamNotFoundError"))).toBe("fatal")
    expect(classifyFailure(new FatalFailure("x", "y"))).toBe("fatal")
  })

  it("retries transient failures always, unknown ones five times, poison and fatal ones never", () => {
    expect(classifyFailure(new TypeError("x is undefined"))).toBe("unknown")
    expect([0, 100, 10_000].every((attempt) => shouldRetry("transient", attempt))).toBe(true)
    expect([0, 1, 2, 3, 4, 5].map((attempt) => shouldRetry("unknown", attempt))).toEqual([true, true, true, true, false, false])
    expect([shouldRetry("poison", 0), shouldRetry("fatal", 0)]).toEqual([false, false])
  })
})
