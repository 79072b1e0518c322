import { describe, expect, it } from "vitest"
import { fatal } from "./failures.ts"
import { type RetryOptions, retrying, STOPPED } from "./retry.ts"

const postgresError = (code: string) => Object.assign(new Error(`pg ${code}`), { name: "PostgresError", code })
const refused = () => Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })

const optionsWith = (extra: Partial<RetryOptions> = {}) => {
  const retries: Array<number> = []
  const options: RetryOptions = {
    nc: { isClosed: () => false },
    projection: { name: "test" },
    onRetry: (_, attempt) => retries.push(attempt),
    ...extra
  }
  return { options, retries }
}

/** A step that fails with `failures` in turn, then succeeds with `value`. */
const failingThen = <A>(failures: ReadonlyArray<unknown>, value: A) => {
  let calls = 0
  return {
    step: async () => {
      const failure = failures[calls++]
      if (failure !== undefined) throw failure
      return value
    },
    calls: () => calls
  }
}

describe("retrying a step of the runtime", () => {
  it("waits out failures on our side and returns the step's value once it succeeds", async () => {
    const { options, retries } = optionsWith()
    const step = failingThen([refused(), refused()], "done")
    expect(await retrying(options, "applying a batch", step.step)).toBe("done")
    expect([step.calls(), retries]).toEqual([3, [0, 1]])
  })

  it("throws a failure no wait mends as it is, without retrying it", async () => {
    const { options, retries } = optionsWith()
    const missing = postgresError("42P01")
    await expect(retrying(options, "applying a batch", failingThen([missing], "x").step)).rejects.toBe(missing)
    expect(retries).toEqual([])
  })

  it("gives up on a failure of unknown kind after five tries, saying so", async () => {
    const { options } = optionsWith()
    const odd = () => new TypeError("x is undefined")
    const step = failingThen([odd(), odd(), odd(), odd(), odd(), odd()], "x")
    await expect(retrying(options, "applying a batch", step.step)).rejects.toMatchObject({
      _tag: "FatalFailure",
      message: "applying a batch failed 5 times: x is undefined; see the error; restart once it is fixed"
    })
    expect(step.calls()).toBe(5)
  })

  it("stops retrying when the NATS connection closed for good", async () => {
    const { options } = optionsWith({ nc: { isClosed: () => true } })
    await expect(retrying(options, "reading the log", failingThen([refused()], "x").step)).rejects.toMatchObject({ _tag: "FatalFailure" })
  })

  it("finishes a step under way when asked to stop, and returns its value", async () => {
    const stop = new AbortController()
    const { options } = optionsWith({ signal: stop.signal })
    const result = retrying(options, "applying a batch", async () => {
      stop.abort()
      await Promise.resolve()
      return "committed"
    })
    expect(await result).toBe("committed")
  })

  it("still throws a fatal failure of the step under way when asked to stop meanwhile", async () => {
    const stop = new AbortController()
    const { options } = optionsWith({ signal: stop.signal })
    const newer = fatal("the marts are newer than this process's code", "deploy the new code")
    const result = retrying(options, "applying a batch", async () => {
      stop.abort()
      await Promise.resolve()
      throw newer
    })
    await expect(result).rejects.toBe(newer)
  })

  it("stops during the wait after a failure on our side, without trying again", async () => {
    const stop = new AbortController()
    const { options } = optionsWith({ signal: stop.signal, onRetry: () => stop.abort() })
    const step = failingThen([refused(), refused()], "x")
    expect(await retrying(options, "applying a batch", step.step)).toBe(STOPPED)
    expect(step.calls()).toBe(1)
  })

  it("does not start a step once asked to stop", async () => {
    const stop = new AbortController()
    stop.abort()
    const step = failingThen([], "x")
    expect(await retrying(optionsWith({ signal: stop.signal }).options, "applying a batch", step.step)).toBe(STOPPED)
    expect(step.calls()).toBe(0)
  })
})
