import { describe, expect, it } from "vitest"
import { erasureEvents } from "../../infra/local/samples.ts"
import type { LogEvent, Outcome } from "../projection.ts"
import type { Row } from "../table.ts"
import { warehouseProjection } from "./projection.ts"

type Envelope = { readonly id: string; readonly type: string; readonly timestamp: string; readonly data: unknown }

/** A warehouse event as the runtime reads it from the log (see consumers/events.ts). */
const logEvent = (payload: Envelope, seq = 1): LogEvent => ({
  seq,
  subject: `ingest.warehouse.erasure.${payload.type.replace(".", "_")}`,
  source: "erasure",
  type: payload.type,
  dedupeKey: `erasure:${payload.id}`,
  occurredAt: new Date(payload.timestamp).toISOString(),
  receivedAt: "2025-01-15T12:00:00.000Z",
  schema: "warehouse/v1",
  payload
})

const project = (payload: Envelope): Outcome => warehouseProjection.project(logEvent(payload))

const erasure = (type: string, data: Record<string, unknown>, timestamp = "2025-01-15T10:32:00Z"): Envelope => ({
  id: "era_1",
  type,
  timestamp,
  data
})

const poisonReason = (outcome: Outcome): string => {
  if (outcome._tag !== "Poison") throw new Error(`expected Poison, got ${JSON.stringify(outcome)}`)
  return outcome.reason
}

const rowsOf = (outcome: Outcome): Readonly<Record<string, ReadonlyArray<Row>>> => {
  if (outcome._tag !== "Rows") throw new Error(`expected Rows, got ${JSON.stringify(outcome)}`)
  return outcome.rows
}

describe("warehouse projection: erasure events", () => {
  it("turns a successful erasure into its erasures row and one erased count for the day, the engineer and the device type", () => {
    const outcome = project(
      erasure("erasure.success", { device_type: "servers", initials: "jd", duration_seconds: 612.5, job_id: "JOB-7" })
    )
    expect(outcome).toEqual({
      _tag: "Rows",
      rows: {
        erasures: [
          {
            event_id: "era_1",
            timestamp: "2025-01-15T10:32:00.000Z",
            date: "2025-01-15",
            month: "2025-01",
            event: "success",
            device_type: "servers",
            initials: "JD",
            duration_seconds: 612.5,
            error_type: null,
            job_id: "JOB-7"
          }
        ],
        daily_stats: [{ date: "2025-01-15", booked_in: 0, erased: 1, qa: 0 }],
        engineer_stats: [{ date: "2025-01-15", initials: "JD", count: 1 }],
        engineer_stats_type: [{ date: "2025-01-15", initials: "JD", device_type: "servers", count: 1 }]
      }
    })
  })

  it("accepts an explicit null error_type on a success and still writes it as null", () => {
    const outcome = project(erasure("erasure.success", { device_type: "servers", initials: "AK", job_id: "JOB-8", error_type: null }))
    expect(rowsOf(outcome).erasures?.[0]).toMatchObject({ error_type: null, duration_seconds: null })
  })

  it("records a failed erasure with its error type and counts nothing", () => {
    const outcome = project(
      erasure("erasure.failure", { device_type: "laptops_desktops", initials: "Mr", job_id: "JOB-3", error_type: "drive_locked" })
    )
    expect(outcome).toEqual({
      _tag: "Rows",
      rows: {
        erasures: [
          {
            event_id: "era_1",
            timestamp: "2025-01-15T10:32:00.000Z",
            date: "2025-01-15",
            month: "2025-01",
            event: "failure",
            device_type: "laptops_desktops",
            initials: "MR",
            duration_seconds: null,
            error_type: "drive_locked",
            job_id: "JOB-3"
          }
        ]
      }
    })
  })

  it("records a connected drive and counts nothing", () => {
    const outcome = project(erasure("erasure.connected", { device_type: "mobiles", initials: "lb", duration_seconds: 0, job_id: "JOB-9" }))
    expect(outcome).toEqual({
      _tag: "Rows",
      rows: {
        erasures: [
          {
            event_id: "era_1",
            timestamp: "2025-01-15T10:32:00.000Z",
            date: "2025-01-15",
            month: "2025-01",
            event: "connected",
            device_type: "mobiles",
            initials: "LB",
            duration_seconds: 0,
            error_type: null,
            job_id: "JOB-9"
          }
        ]
      }
    })
  })

  it("puts an erasure on its UTC day and month, not the sender's local one", () => {
    const late = rowsOf(
      project(erasure("erasure.success", { device_type: "servers", initials: "JD", job_id: "JOB-1" }, "2025-01-31T23:30:00-02:00"))
    )
    expect(late.erasures?.[0]).toMatchObject({ timestamp: "2025-02-01T01:30:00.000Z", date: "2025-02-01", month: "2025-02" })
    expect(late.daily_stats).toEqual([{ date: "2025-02-01", booked_in: 0, erased: 1, qa: 0 }])
    expect(late.engineer_stats).toEqual([{ date: "2025-02-01", initials: "JD", count: 1 }])

    const early = rowsOf(
      project(
        erasure(
          "erasure.failure",
          { device_type: "servers", initials: "JD", job_id: "JOB-2", error_type: "timeout" },
          "2025-03-01T00:30:00+01:00"
        )
      )
    )
    expect(early.erasures?.[0]).toMatchObject({ timestamp: "2025-02-28T23:30:00.000Z", date: "2025-02-28", month: "2025-02" })
  })

  it("normalises a timestamp without seconds or with sub-millisecond digits to a millisecond ISO instant", () => {
    const short = rowsOf(
      project(erasure("erasure.connected", { device_type: "servers", initials: "JD", job_id: "JOB-1" }, "2025-01-15T10:32Z"))
    )
    expect(short.erasures?.[0]?.timestamp).toBe("2025-01-15T10:32:00.000Z")
    const fine = rowsOf(
      project(erasure("erasure.connected", { device_type: "servers", initials: "JD", job_id: "JOB-1" }, "2025-01-15T10:32:00.123456Z"))
    )
    expect(fine.erasures?.[0]?.timestamp).toBe("2025-01-15T10:32:00.123Z")
  })

  it("counts the sample day as the seed does: six erased, by engineer and device type", () => {
    const outcomes = erasureEvents(12, { day: "2025-01-15" }).map((payload) => rowsOf(project(payload)))
    const all = (table: string) => outcomes.flatMap((rows) => rows[table] ?? [])
    expect(all("erasures").map((row) => row.event)).toEqual(
      Array.from({ length: 3 }, () => ["success", "success", "failure", "connected"]).flat()
    )
    expect(all("daily_stats").reduce((sum, row) => sum + Number(row.erased), 0)).toBe(6)
    expect(
      all("engineer_stats")
        .map((row) => row.initials)
        .sort()
    ).toEqual(["AK", "AK", "JD", "JD", "MR", "MR"])
    expect(
      all("engineer_stats_type")
        .filter((row) => row.initials === "JD")
        .map((row) => row.device_type)
    ).toEqual(["servers", "servers"])
  })
})

describe("warehouse projection: intake and QA counts", () => {
  it("adds a booked-in count to the day's intake only", () => {
    expect(
      project({
        id: "intake_1",
        type: "intake.booked_in",
        timestamp: "2025-01-15T07:30:00Z",
        data: { count: 30, initials: "jd", device_type: "servers" }
      })
    ).toEqual({
      _tag: "Rows",
      rows: { daily_stats: [{ date: "2025-01-15", booked_in: 30, erased: 0, qa: 0 }] }
    })
  })

  it("adds a QA count to the day's QA only", () => {
    expect(project({ id: "qa_1", type: "qa.completed", timestamp: "2025-01-15T17:00:00Z", data: { count: 7 } })).toEqual({
      _tag: "Rows",
      rows: { daily_stats: [{ date: "2025-01-15", booked_in: 0, erased: 0, qa: 7 }] }
    })
  })

  it("puts a count on its UTC day", () => {
    expect(
      rowsOf(project({ id: "qa_2", type: "qa.completed", timestamp: "2025-01-16T00:30:00+02:00", data: { count: 4 } })).daily_stats
    ).toEqual([{ date: "2025-01-15", booked_in: 0, erased: 0, qa: 4 }])
  })
})

describe("warehouse projection: events that break the contract", () => {
  it("poisons an erasure without its fields, naming each missing field", () => {
    const reason = poisonReason(project({ id: "era_poison", type: "erasure.success", timestamp: "2025-01-21T08:00:00Z", data: {} }))
    expect(reason).toContain("$.data.device_type: Missing key")
    expect(reason).toContain("$.data.initials: Missing key")
    expect(reason).toContain("$.data.job_id: Missing key")
  })

  it("poisons initials that are not 1 to 8 letters", () => {
    const reason = poisonReason(project(erasure("erasure.success", { device_type: "servers", initials: "J.D", job_id: "JOB-1" })))
    expect(reason).toMatch(/^\$\.data\.initials: Expected engineer initials/)
    expect(reason).toContain('"J.D"')
  })

  it("poisons a failure without an error type and a success carrying one", () => {
    expect(poisonReason(project(erasure("erasure.failure", { device_type: "servers", initials: "JD", job_id: "JOB-1" })))).toContain(
      "$.data.error_type"
    )
    expect(
      poisonReason(project(erasure("erasure.success", { device_type: "servers", initials: "JD", job_id: "JOB-1", error_type: "timeout" })))
    ).toContain("$.data.error_type")
  })

  it("poisons a negative duration", () => {
    expect(
      poisonReason(project(erasure("erasure.connected", { device_type: "servers", initials: "JD", job_id: "JOB-1", duration_seconds: -1 })))
    ).toContain("$.data.duration_seconds")
  })

  it("poisons a count that is not a positive integer", () => {
    expect(poisonReason(project({ id: "qa_1", type: "qa.completed", timestamp: "2025-01-15T17:00:00Z", data: { count: 0 } }))).toContain(
      "$.data.count"
    )
    expect(
      poisonReason(project({ id: "in_1", type: "intake.booked_in", timestamp: "2025-01-15T17:00:00Z", data: { count: 1.5 } }))
    ).toContain("$.data.count")
  })

  it("poisons an envelope whose timestamp has no time zone", () => {
    expect(
      poisonReason(project(erasure("erasure.success", { device_type: "servers", initials: "JD", job_id: "JOB-1" }, "2025-01-15T10:32:00")))
    ).toContain("$.timestamp")
  })

  it("poisons an event type it does not know, naming the type (the envelope's types are the contract's)", () => {
    const reason = poisonReason(project({ id: "x_1", type: "erasure.started", timestamp: "2025-01-15T10:32:00Z", data: {} }))
    expect(reason).toContain("$.type")
    expect(reason).toContain('"erasure.started"')
  })

  it("poisons a message whose data was not JSON (the runtime reads it as undefined)", () => {
    expect(warehouseProjection.project({ ...logEvent(erasure("erasure.success", {})), payload: undefined })._tag).toBe("Poison")
  })
})
