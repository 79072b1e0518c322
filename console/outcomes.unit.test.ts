import { describe, expect, it } from "vitest"
import { addOutcome, NO_OUTCOMES, outcomesView } from "./outcomes.ts"

const T = Date.parse("2026-12-03T10:05:30Z")

describe("the edge's outcomes per source", () => {
  it("counts duplicates per minute and rejections by status over the minutes shown, and keeps the last rejection", () => {
    let outcomes = NO_OUTCOMES
    outcomes = addOutcome(outcomes, { source: "hubspot", status: 202, events: 5, duplicates: 2 }, T - 60_000)
    outcomes = addOutcome(outcomes, { source: "hubspot", status: 202, events: 3, duplicates: 1 }, T)
    outcomes = addOutcome(
      outcomes,
      { source: "hubspot", status: 401, events: 0, duplicates: 0, error: "unauthorized", message: "bad signature" },
      T
    )
    outcomes = addOutcome(
      outcomes,
      { source: "hubspot", status: 401, events: 0, duplicates: 0, error: "unauthorized", message: "bad signature" },
      T - 120_000
    )
    outcomes = addOutcome(
      outcomes,
      { source: "hubspot", status: 422, events: 0, duplicates: 0, error: "invalid", message: "data.id: missing" },
      T - 30 * 60_000
    )
    const view = outcomesView(outcomes, T, 10)
    expect(view.duplicates).toBe(3)
    expect(view.duplicatesPerMinute.slice(-2).map((one) => one.count)).toEqual([2, 1])
    // The 422 was 30 minutes ago: outside the 10 minutes shown.
    expect(view.rejectedByStatus).toEqual([{ status: 401, count: 2 }])
    // The last heard, not the latest dated: outcomes arrive in the order they were answered.
    expect(view.lastRejection).toEqual({ at: T - 30 * 60_000, status: 422, error: "invalid", message: "data.id: missing" })
  })

  it("shows nothing before anything was heard", () => {
    const view = outcomesView(NO_OUTCOMES, T, 3)
    expect(view).toEqual({
      duplicatesPerMinute: [
        { minute: "10:03", count: 0 },
        { minute: "10:04", count: 0 },
        { minute: "10:05", count: 0 }
      ],
      duplicates: 0,
      rejectedByStatus: [],
      lastRejection: null
    })
  })
})
