import { describe, expect, it } from "vitest"
import { DEFAULT_LIMITS, holdOff, newGovernor, nextBatchSize, recordPost, waitBeforePost } from "./governor.ts"

const HOUR = 3_600_000

describe("the push governor", () => {
  it("starts with an empty bucket and lets a POST go once the bucket holds its rows", () => {
    const governor = newGovernor(0)
    const rate = DEFAULT_LIMITS.rowsPerHour / HOUR
    const wait = waitBeforePost(governor, 0, 10_000, false)
    expect(wait).toBe(Math.ceil(10_000 / rate))
    expect(waitBeforePost(governor, wait, 10_000, false)).toBe(0)
  })

  it("never lets a rolling hour hold more than the documented 1,000,000 rows, however the POSTs fall", () => {
    const governor = newGovernor(0)
    const sent: Array<{ at: number; rows: number }> = []
    let now = 0
    for (let i = 0; i < 400; i++) {
      const rows = [10_000, 1, 2_500, 9_999][i % 4] as number
      now += waitBeforePost(governor, now, rows, false)
      recordPost(governor, now, rows)
      sent.push({ at: now, rows })
    }
    for (const { at } of sent) {
      const inHour = sent.filter((post) => post.at > at - HOUR && post.at <= at).reduce((sum, post) => sum + post.rows, 0)
      expect(inHour).toBeLessThanOrEqual(1_000_000)
    }
  })

  it("keeps POSTs under 118 a minute, and under 118 an hour once a table is large", () => {
    const governor = newGovernor(0, { ...DEFAULT_LIMITS, rowsPerHour: 1e12 })
    let now = 0
    const times: Array<number> = []
    for (let i = 0; i < 300; i++) {
      now += waitBeforePost(governor, now, 1, i >= 150)
      recordPost(governor, now, 1)
      times.push(now)
    }
    for (const at of times.slice(0, 150)) expect(times.filter((t) => t > at - 60_000 && t <= at).length).toBeLessThanOrEqual(118)
    for (const at of times.slice(150)) expect(times.filter((t) => t > at - HOUR && t <= at).length).toBeLessThanOrEqual(118)
  })

  it("holds every POST back until a Retry-After has passed", () => {
    const governor = newGovernor(0, { ...DEFAULT_LIMITS, rowsPerHour: 1e12 })
    recordPost(governor, 1000, 1)
    holdOff(governor, 1000, 30_000)
    expect(waitBeforePost(governor, 1000, 1, false)).toBe(30_000)
    expect(waitBeforePost(governor, 31_000, 1, false)).toBe(0)
  })

  it("sizes a POST at what is waiting, at most 10,000 rows", () => {
    const governor = newGovernor(0)
    expect(nextBatchSize(governor, 37)).toBe(37)
    expect(nextBatchSize(governor, 250_000)).toBe(10_000)
  })
})
