import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SettingError } from "../platform/settings.ts"
import { decideRefresh, nextAllowedAt, positionFromStatus, type RefreshInput, refreshBody, refreshSettings } from "./refresh.ts"

const PROJECTIONS = ["warehouse", "crm", "oee", "retail"]
const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000
const T0 = Date.parse("2025-01-15T10:00:00Z")
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))

const settingsOf = (env: Record<string, string>) => refreshSettings({ env }, PROJECTIONS)

/** The SettingError `env` makes refreshSettings throw. */
const refusalOf = (env: Record<string, string>): SettingError => {
  try {
    settingsOf(env)
  } catch (error) {
    if (error instanceof SettingError) return error
    throw error
  }
  throw new Error(`expected a SettingError for ${JSON.stringify(env)}`)
}

describe("the refresh settings", () => {
  it("read each projection's datasets, with spaces around the parts, and default to 15 minutes and shared capacity's 8 a day", () => {
    expect(settingsOf({ POWERBI_REFRESH: " crm=ws-1/ds-crm , oee = ws-2/ds-a ; ws-2/ds-b ," })).toEqual({
      targets: [
        { projection: "crm", groupId: "ws-1", datasetId: "ds-crm" },
        { projection: "oee", groupId: "ws-2", datasetId: "ds-a" },
        { projection: "oee", groupId: "ws-2", datasetId: "ds-b" }
      ],
      minIntervalMs: 900_000,
      dailyCap: 8,
      premium: false
    })
    expect(settingsOf({}).targets).toEqual([])
    expect(
      settingsOf({
        POWERBI_REFRESH: "warehouse=0f3c5a1e-1111-2222-3333-444455556666/9a8b7c6d-aaaa-bbbb-cccc-ddddeeeeffff",
        POWERBI_REFRESH_MIN_INTERVAL: "0",
        POWERBI_REFRESH_DAILY_CAP: "3"
      })
    ).toMatchObject({ minIntervalMs: 0, dailyCap: 3 })
  })

  it("refuse a projection that does not exist, naming the ones that do", () => {
    const error = refusalOf({ POWERBI_REFRESH: "crm=g/d,sales=g/e" })
    expect(error.setting).toBe("POWERBI_REFRESH")
    expect(error.message).toBe(
      'POWERBI_REFRESH: "sales" is not a projection; the projections are warehouse, crm, oee, retail (in "sales=g/e")'
    )
  })

  it("refuse malformed entries and ids, naming the part that is wrong", () => {
    const messages = ["crm", "crm=", "crm=g", "crm=g/d/e", "crm=/d", "crm=g/d e", "crm=g/d?x=1", "crm=g/d,crm=g/e", "crm=g/d,oee=g/d"].map(
      (value) => {
        const error = refusalOf({ POWERBI_REFRESH: value })
        expect(error.setting).toBe("POWERBI_REFRESH")
        return error.message
      }
    )
    expect(messages).toEqual([
      `POWERBI_REFRESH: "crm" has no '=': expected <projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…], projections separated by ','`,
      `POWERBI_REFRESH: crm has no dataset: expected <projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…], projections separated by ','`,
      `POWERBI_REFRESH: "g" (for crm) is not <groupId>/<datasetId>: expected <projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…], projections separated by ','`,
      `POWERBI_REFRESH: "g/d/e" (for crm) is not <groupId>/<datasetId>: expected <projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…], projections separated by ','`,
      `POWERBI_REFRESH: "" in "/d" (for crm) is not a workspace (group) id: Power BI's ids are GUIDs (letters, digits, '-' and '_')`,
      `POWERBI_REFRESH: "d e" in "g/d e" (for crm) is not a dataset id: Power BI's ids are GUIDs (letters, digits, '-' and '_')`,
      `POWERBI_REFRESH: "d?x=1" in "g/d?x=1" (for crm) is not a dataset id: Power BI's ids are GUIDs (letters, digits, '-' and '_')`,
      `POWERBI_REFRESH lists crm twice: list its datasets once, separated by ';' (crm=<g>/<d1>;<g>/<d2>)`,
      `POWERBI_REFRESH lists dataset g/d twice (for crm and oee): a dataset is refreshed for one projection`
    ])
  })

  it("refuse an interval or a cap that is not a whole number, naming the setting", () => {
    for (const [setting, value] of [
      ["POWERBI_REFRESH_MIN_INTERVAL", "15m"],
      ["POWERBI_REFRESH_MIN_INTERVAL", "-5"],
      ["POWERBI_REFRESH_MIN_INTERVAL", "1.5"],
      ["POWERBI_REFRESH_DAILY_CAP", "eight"],
      ["POWERBI_REFRESH_DAILY_CAP", "0"]
    ] as const) {
      const error = refusalOf({ [setting]: value })
      expect(error.setting).toBe(setting)
      expect(error.message).toContain(`${setting} must be a whole number`)
      expect(error.message).toContain(JSON.stringify(value))
    }
  })

  it("refuse a cap over 8 a day or enhanced-refresh options unless the workspace is on Premium", () => {
    const cap = refusalOf({ POWERBI_REFRESH_DAILY_CAP: "48" })
    expect(cap.setting).toBe("POWERBI_REFRESH_DAILY_CAP")
    expect(cap.message).toMatch(
      /^POWERBI_REFRESH_DAILY_CAP is 48, more than the 8 refreshes a day shared capacity allows: set POWERBI_REFRESH_PREMIUM=true/
    )
    const options = refusalOf({ POWERBI_REFRESH_OPTIONS: '{"type":"full"}' })
    expect(options.setting).toBe("POWERBI_REFRESH_OPTIONS")
    expect(options.message).toMatch(/^POWERBI_REFRESH_OPTIONS is set, but enhanced refresh .* needs a Premium, PPU or Embedded capacity/)
    expect(refusalOf({ POWERBI_REFRESH_PREMIUM: "maybe" })).toMatchObject({
      setting: "POWERBI_REFRESH_PREMIUM",
      message: 'POWERBI_REFRESH_PREMIUM must be true or false, got "maybe"'
    })
    expect(
      settingsOf({
        POWERBI_REFRESH_PREMIUM: "true",
        POWERBI_REFRESH_DAILY_CAP: "48",
        POWERBI_REFRESH_OPTIONS: '{"type":"full","commitMode":"transactional","retryCount":2}'
      })
    ).toMatchObject({ premium: true, dailyCap: 48, options: { type: "full", commitMode: "transactional", retryCount: 2 } })
    expect(settingsOf({ POWERBI_REFRESH_PREMIUM: "false" }).premium).toBe(false)
  })

  it("check each enhanced-refresh option as Power BI documents it", () => {
    const problem = (options: string) => refusalOf({ POWERBI_REFRESH_PREMIUM: "1", POWERBI_REFRESH_OPTIONS: options }).message
    expect(problem("{type: full}")).toMatch(/^POWERBI_REFRESH_OPTIONS is not JSON/)
    expect(problem("[1]")).toBe('POWERBI_REFRESH_OPTIONS must be a JSON object such as {"type":"full"}, got [1]')
    expect(problem('{"notifyOption":"MailOnFailure"}')).toMatch(/must not hold notifyOption/)
    expect(problem('{"retries":2}')).toBe(
      'POWERBI_REFRESH_OPTIONS has an unknown option "retries"; the options are type, commitMode, maxParallelism, retryCount, objects, applyRefreshPolicy, effectiveDate, timeout'
    )
    expect(problem('{"type":"add"}')).toBe(
      'POWERBI_REFRESH_OPTIONS: type must be one of full, clearvalues, calculate, dataonly, automatic, defragment (any case), got "add"'
    )
    expect(problem('{"retryCount":-1}')).toMatch(/retryCount must be a whole number of at least 0, got -1/)
    expect(problem('{"maxParallelism":0}')).toMatch(/maxParallelism must be a whole number of at least 1, got 0/)
    expect(problem('{"commitMode":"partialBatch"}')).toMatch(/partialBatch needs "applyRefreshPolicy": false/)
    expect(problem('{"objects":[{"partition":"p"}]}')).toMatch(/objects must be a list of/)
    expect(problem('{"timeout":"5h"}')).toMatch(/timeout must be HH:MM:SS/)
    expect(problem('{"timeout":"10:00:00","retryCount":2}')).toMatch(/timeout 10:00:00 times 3 attempts .* over the 24 h/)
    expect(
      settingsOf({
        POWERBI_REFRESH_PREMIUM: "yes",
        POWERBI_REFRESH_OPTIONS:
          '{"type":"DataOnly","commitMode":"partialBatch","applyRefreshPolicy":false,"objects":[{"table":"FactOee"}],"timeout":"02:00:00"}'
      }).options
    ).toEqual({
      type: "DataOnly",
      commitMode: "partialBatch",
      applyRefreshPolicy: false,
      objects: [{ table: "FactOee" }],
      timeout: "02:00:00"
    })
  })

  it("make a standard refresh's body notifyOption only, and an enhanced one's the options alone", () => {
    expect(refreshBody()).toEqual({ notifyOption: "NoNotification" })
    expect(refreshBody({})).toEqual({ notifyOption: "NoNotification" })
    expect(refreshBody({ type: "full", retryCount: 2 })).toEqual({ type: "full", retryCount: 2 })
  })
})

const base: RefreshInput = {
  now: T0,
  checkpoint: 40,
  head: 40,
  covered: 0,
  starts: [],
  running: false,
  minIntervalMs: 15 * MINUTE,
  dailyCap: 8
}

describe("the refresh decision", () => {
  it("triggers once the projection has caught up past what the last refresh covered, covering its checkpoint", () => {
    expect(decideRefresh(base)).toEqual({ action: "trigger", covers: 40 })
    expect(decideRefresh({ ...base, covered: 30, starts: [T0 - HOUR] })).toEqual({ action: "trigger", covers: 40 })
  })

  it("waits while the projection is behind its stream, or when nothing is new since the last refresh", () => {
    expect(decideRefresh({ ...base, checkpoint: 35 })).toEqual({
      action: "wait",
      reason: "not-caught-up",
      message: "projection not caught up: checkpoint 35 of stream head 40"
    })
    expect(decideRefresh({ ...base, covered: 40 })).toEqual({
      action: "wait",
      reason: "nothing-new",
      message: "nothing new since the last refresh (it covered checkpoint 40)"
    })
  })

  it("waits for a running refresh, whoever started it, without a time", () => {
    expect(decideRefresh({ ...base, running: true })).toEqual({
      action: "wait",
      reason: "running",
      message: "a refresh is running: waiting for it to finish"
    })
  })

  it("waits out the minimum interval since the last refresh started, ours or a scheduled one", () => {
    expect(decideRefresh({ ...base, starts: [T0 - 5 * MINUTE] })).toEqual({
      action: "wait",
      reason: "min-interval",
      until: T0 + 10 * MINUTE,
      message: "minimum interval: the last refresh started at 2025-01-15T09:55:00.000Z, next at 2025-01-15T10:10:00.000Z"
    })
    expect(decideRefresh({ ...base, starts: [T0 - 15 * MINUTE] }).action).toBe("trigger")
  })

  it("waits at the daily cap until the oldest refresh of the last 24 h leaves the window, scheduled ones counted", () => {
    const starts = [T0 - 23 * HOUR, T0 - 20 * HOUR, T0 - 16 * HOUR, T0 - 12 * HOUR, T0 - 8 * HOUR, T0 - 4 * HOUR, T0 - 2 * HOUR, T0 - HOUR]
    expect(decideRefresh({ ...base, starts })).toEqual({
      action: "wait",
      reason: "daily-cap",
      until: T0 + HOUR,
      message: "daily cap: 8 of 8 in the last 24 h, next at 2025-01-15T11:00:00.000Z"
    })
    expect(decideRefresh({ ...base, starts: [T0 - 25 * HOUR, ...starts.slice(1)] }).action).toBe("trigger")
    // Two over a lowered cap: the window must lose three of them.
    expect(decideRefresh({ ...base, starts, dailyCap: 6 })).toMatchObject({ reason: "daily-cap", until: T0 - 16 * HOUR + DAY })
  })

  it("names whichever wait ends last when the interval, the cap and a hold all stand in the way", () => {
    const leaving = Array.from({ length: 7 }, (_, i) => T0 - DAY + (i + 1) * MINUTE)
    expect(decideRefresh({ ...base, starts: [...leaving, T0 - MINUTE] })).toMatchObject({ reason: "min-interval", until: T0 + 14 * MINUTE })
    const staying = Array.from({ length: 7 }, (_, i) => T0 - 20 * HOUR + i * MINUTE)
    expect(decideRefresh({ ...base, starts: [...staying, T0 - 14 * MINUTE] })).toMatchObject({ reason: "daily-cap", until: T0 + 4 * HOUR })
    expect(decideRefresh({ ...base, hold: { until: T0, reason: "over" } }).action).toBe("trigger")
  })

  it("coalesces catch-ups within the interval into one refresh at its end, covering the newest checkpoint", () => {
    const first = decideRefresh({ ...base, checkpoint: 10, head: 10 })
    expect(first).toEqual({ action: "trigger", covers: 10 })
    const starts = [T0]
    const later = [2, 5, 10, 14].map((minutes) =>
      decideRefresh({ ...base, now: T0 + minutes * MINUTE, checkpoint: 10 + minutes, head: 10 + minutes, covered: 10, starts })
    )
    expect(later.map((decision) => (decision.action === "wait" ? [decision.reason, decision.until] : decision))).toEqual(
      Array(4).fill(["min-interval", T0 + 15 * MINUTE])
    )
    expect(decideRefresh({ ...base, now: T0 + 15 * MINUTE, checkpoint: 24, head: 24, covered: 10, starts })).toEqual({
      action: "trigger",
      covers: 24
    })
  })

  it("says when the next refresh may start by the clock alone", () => {
    expect(nextAllowedAt({ now: T0, starts: [], minIntervalMs: 15 * MINUTE, dailyCap: 8 })).toBe(T0)
    expect(nextAllowedAt({ now: T0, starts: [T0], minIntervalMs: 15 * MINUTE, dailyCap: 8 })).toBe(T0 + 15 * MINUTE)
    expect(nextAllowedAt({ now: T0, starts: [T0 - HOUR, T0], minIntervalMs: 15 * MINUTE, dailyCap: 2 })).toBe(T0 - HOUR + DAY)
  })
})

describe("the refresh decision over generated histories", () => {
  console.log(`refresh decision seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run)`)

  const timeInputs = fc.record({
    now: fc.integer({ min: T0, max: T0 + 30 * DAY }),
    minIntervalMs: fc.integer({ min: 0, max: 6 * HOUR }),
    dailyCap: fc.integer({ min: 1, max: 12 }),
    ago: fc.array(fc.integer({ min: 0, max: 2 * DAY }), { maxLength: 20 }),
    hold: fc.option(fc.integer({ min: -HOUR, max: 3 * HOUR }), { nil: undefined })
  })

  it("waits by the clock until exactly the time it names, and triggers then", () => {
    fc.assert(
      fc.property(timeInputs, ({ now, minIntervalMs, dailyCap, ago, hold }) => {
        const input: RefreshInput = {
          ...base,
          now,
          minIntervalMs,
          dailyCap,
          starts: ago.map((back) => now - back),
          ...(hold === undefined ? {} : { hold: { until: now + hold, reason: "held" } })
        }
        const decision = decideRefresh(input)
        if (decision.action === "trigger") {
          expect(nextAllowedAt(input)).toBe(now)
          return
        }
        expect(decision.until).toBeGreaterThan(now)
        const until = decision.until as number
        expect(nextAllowedAt(input)).toBe(until)
        expect(decideRefresh({ ...input, now: until - 1 }).action).toBe("wait")
        expect(decideRefresh({ ...input, now: until })).toEqual({ action: "trigger", covers: input.checkpoint })
      }),
      { seed: SEED, numRuns: 2000 }
    )
  })

  const step = fc.record({
    dt: fc.integer({ min: 0, max: 3 * HOUR }),
    events: fc.nat({ max: 5 }),
    catchUp: fc.boolean(),
    scheduled: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    duration: fc.integer({ min: 0, max: 2 * HOUR })
  })

  it("never triggers behind the stream, twice for one checkpoint, over a running refresh, within the interval or past the cap, and covers the last catch-up", () => {
    const seen = new Map<string, number>()
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 * HOUR }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(step, { maxLength: 150 }),
        (minIntervalMs, dailyCap, steps) => {
          let now = T0
          let head = 0
          let checkpoint = 0
          let covered = 0
          const refreshes: Array<{ readonly at: number; readonly end: number }> = []
          const decide = () =>
            decideRefresh({
              now,
              checkpoint,
              head,
              covered,
              starts: refreshes.map((refresh) => refresh.at),
              running: refreshes.some((refresh) => now < refresh.end),
              minIntervalMs,
              dailyCap
            })
          const trigger = (duration: number) => {
            expect(checkpoint).toBeGreaterThanOrEqual(head)
            expect(checkpoint).toBeGreaterThan(covered)
            expect(refreshes.every((refresh) => refresh.end <= now && now - refresh.at >= minIntervalMs)).toBe(true)
            expect(refreshes.filter((refresh) => refresh.at > now - DAY).length).toBeLessThan(dailyCap)
            refreshes.push({ at: now, end: now + duration })
            covered = checkpoint
          }
          for (const { dt, events, catchUp, scheduled, duration } of steps) {
            now += dt
            head += events
            if (catchUp) checkpoint = head
            // A refresh the service runs on its own schedule: it counts, but covers nothing we know of.
            if (scheduled && !refreshes.some((refresh) => now < refresh.end)) refreshes.push({ at: now, end: now + duration })
            const decision = decide()
            const kind = decision.action === "trigger" ? "trigger" : decision.reason
            seen.set(kind, (seen.get(kind) ?? 0) + 1)
            if (decision.action === "trigger") {
              expect(decision.covers).toBe(checkpoint)
              trigger(duration)
            } else if (decision.until !== undefined) expect(decision.until).toBeGreaterThan(now)
          }
          // Quiet from here on: once every wait is over, the newest checkpoint is refreshed, and then nothing more.
          checkpoint = head
          now = Math.max(now, ...refreshes.map((refresh) => refresh.end)) + DAY + minIntervalMs
          const last = decide()
          if (checkpoint > covered) {
            expect(last).toEqual({ action: "trigger", covers: checkpoint })
            trigger(0)
          } else expect(last).toMatchObject({ reason: "nothing-new" })
          expect(decide()).toMatchObject({ action: "wait", reason: "nothing-new" })
        }
      ),
      { seed: SEED, numRuns: 500 }
    )
    // The generated histories reach every branch of the decision.
    expect([...seen.keys()].sort()).toEqual(["daily-cap", "min-interval", "not-caught-up", "nothing-new", "running", "trigger"])
  })
})

describe("the position from the projections' status", () => {
  it("asks for the one projection and answers its checkpoint and stream head", async () => {
    const asked: Array<ReadonlyArray<string>> = []
    const position = positionFromStatus(async (names) => {
      asked.push(names)
      return [{ projection: "oee", checkpoint: 12, head: 15, lag: 3 }]
    })
    expect(await position("oee")).toEqual({ checkpoint: 12, head: 15 })
    await expect(position("crm")).rejects.toThrow("no status for projection crm")
    expect(asked).toEqual([["oee"], ["crm"]])
  })
})
