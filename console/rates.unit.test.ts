import { describe, expect, it } from "vitest"
import { addToTally, etaSeconds, growth, keepRecent, lastMinutes, minuteOf, rateOf, tallyByMinute } from "./rates.ts"

const at = (iso: string) => Date.parse(iso)

describe("rates", () => {
  it("are events per second from the oldest reading in the window to the newest", () => {
    const readings = [
      { at: 0, value: 0 },
      { at: 10_000, value: 500 },
      { at: 20_000, value: 1500 }
    ]
    expect(rateOf(readings)).toBe(75)
    expect(rateOf(readings, 10_000)).toBe(100)
  })

  it("are 0 with fewer than two readings apart in time, and never negative when a counter starts over", () => {
    expect(rateOf([])).toBe(0)
    expect(rateOf([{ at: 5, value: 9 }])).toBe(0)
    expect(
      rateOf([
        { at: 5, value: 9 },
        { at: 5, value: 12 }
      ])
    ).toBe(0)
    expect(
      rateOf([
        { at: 0, value: 900 },
        { at: 1000, value: 10 }
      ])
    ).toBe(0)
  })

  it("keep the readings of the window, and at least the last two", () => {
    const readings = [0, 10_000, 50_000, 55_000].map((ms) => ({ at: ms, value: ms }))
    expect(keepRecent(readings, 30_000).map((reading) => reading.at)).toEqual([50_000, 55_000])
    expect(keepRecent(readings.slice(0, 2), 1000).map((reading) => reading.at)).toEqual([0, 10_000])
  })
})

describe("an ETA", () => {
  it("is what remains over the rate, 0 when nothing remains, and unknown when nothing moves", () => {
    expect(etaSeconds(1000, 250)).toBe(4)
    expect(etaSeconds(0, 0)).toBe(0)
    expect(etaSeconds(-5, 10)).toBe(0)
    expect(etaSeconds(10, 0)).toBeUndefined()
  })
})

describe("per-minute tallies", () => {
  it("count timestamps by the minute they fall in, skipping what is not a time", () => {
    const tally = tallyByMinute(["2026-01-01T10:00:05Z", "2026-01-01T10:00:59.999Z", "2026-01-01T10:01:00Z", "not a time"])
    expect([...tally]).toEqual([
      [at("2026-01-01T10:00:00Z"), 2],
      [at("2026-01-01T10:01:00Z"), 1]
    ])
  })

  it("add counts to the minute of their reading and drop minutes past the kept span", () => {
    let tally = addToTally(new Map(), at("2026-01-01T10:00:10Z"), 3, 2)
    tally = addToTally(tally, at("2026-01-01T10:00:50Z"), 2, 2)
    tally = addToTally(tally, at("2026-01-01T10:01:10Z"), 0, 2)
    expect([...tally]).toEqual([[at("2026-01-01T10:00:00Z"), 5]])
    tally = addToTally(tally, at("2026-01-01T10:02:00Z"), 1, 2)
    expect([...tally]).toEqual([[at("2026-01-01T10:02:00Z"), 1]])
  })

  it("show the last minutes oldest first, with 0 where nothing happened", () => {
    const tally = new Map([[at("2026-01-01T10:01:00Z"), 7]])
    expect(lastMinutes(tally, at("2026-01-01T10:02:30Z"), 3)).toEqual([
      { minute: "10:00", count: 0 },
      { minute: "10:01", count: 7 },
      { minute: "10:02", count: 0 }
    ])
    expect(minuteOf(at("2026-01-01T10:02:30Z"))).toBe(at("2026-01-01T10:02:00Z"))
  })

  it("grow by what each counter gained since the last reading: nothing on the first, from 0 for a new one", () => {
    const first = new Map([["erasure", 100]])
    expect([...growth(undefined, first)]).toEqual([["erasure", 0]])
    expect([
      ...growth(
        first,
        new Map([
          ["erasure", 130],
          ["hubspot", 4]
        ])
      )
    ]).toEqual([
      ["erasure", 30],
      ["hubspot", 4]
    ])
  })
})
