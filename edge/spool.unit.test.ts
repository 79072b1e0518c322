import { headers as natsHeaders } from "@nats-io/nats-core"
import { describe, expect, it } from "vitest"
import {
  chunked,
  drainBackoffMs,
  msgIdOf,
  needsRearm,
  SPOOL_ROW_LIMIT_BYTES,
  SPOOL_ROW_OVERHEAD_BYTES,
  SPOOL_ROWS_PER_INSERT,
  SPOOL_ROW_VALUES,
  spoolInsert,
  spoolRefusal,
  spoolRowBytes,
  spoolsEvents,
  STALE_ALARM_MS
} from "./spool.ts"

const utf8 = (text: string) => new TextEncoder().encode(text)

describe("which sources spool", () => {
  it("follows the source's own setting first, then SPOOL; auto spools the senders that do not retry", () => {
    expect(spoolsEvents("auto", undefined, false)).toBe(true)
    expect(spoolsEvents("auto", undefined, true)).toBe(false)
    expect(spoolsEvents("on", undefined, true)).toBe(true)
    expect(spoolsEvents("off", undefined, false)).toBe(false)
    expect(spoolsEvents("off", "on", true)).toBe(true)
    expect(spoolsEvents("on", "off", false)).toBe(false)
    expect(spoolsEvents("auto", "off", false)).toBe(false)
  })
})

describe("the drain's backoff", () => {
  it("starts at the base, doubles per failure and stops at the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((failures) => drainBackoffMs(failures, 1000, 60_000))).toEqual([
      0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000
    ])
    expect(drainBackoffMs(7, 20, 100)).toBe(100)
    expect(drainBackoffMs(10_000, 1000, 60_000)).toBe(60_000)
  })
})

describe("a spool row", () => {
  const message = { subject: "ingest.crm.aloware.call_disposed", msgId: "aloware:é", headers: utf8("NATS/1.0\r\n\r\n"), data: utf8("{}") }

  it("counts the bytes of every column it stores, UTF-8", () => {
    expect(spoolRowBytes(message)).toBe(32 + 10 + 12 + 2 + SPOOL_ROW_OVERHEAD_BYTES)
  })

  it("refuses a batch with a row over the limit, naming it, before checking the bound", () => {
    expect(spoolRefusal(0, [100, SPOOL_ROW_LIMIT_BYTES + 1, 100], 10)).toEqual({
      _tag: "RowTooLarge",
      position: 1,
      bytes: SPOOL_ROW_LIMIT_BYTES + 1,
      limit: SPOOL_ROW_LIMIT_BYTES
    })
    expect(spoolRefusal(0, [SPOOL_ROW_LIMIT_BYTES], 10)).toBeUndefined()
  })

  it("refuses a batch that would pass SPOOL_MAX_EVENTS, whole", () => {
    expect(spoolRefusal(9, [1], 10)).toBeUndefined()
    expect(spoolRefusal(9, [1, 1], 10)).toEqual({ _tag: "Full", depth: 9, limit: 10 })
    expect(spoolRefusal(10, [1], 10)).toEqual({ _tag: "Full", depth: 10, limit: 10 })
  })

  it("is written at most 100 bound parameters per statement", () => {
    expect(SPOOL_ROWS_PER_INSERT * SPOOL_ROW_VALUES).toBeLessThanOrEqual(100)
    const statement = spoolInsert(SPOOL_ROWS_PER_INSERT)
    expect(statement.split("?").length - 1).toBe(SPOOL_ROWS_PER_INSERT * SPOOL_ROW_VALUES)
    expect(statement).toMatch(/ON CONFLICT \(msg_id\) DO NOTHING RETURNING msg_id$/)
    expect(chunked([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]])
    expect(chunked([], 16)).toEqual([])
  })

  it("is keyed by the Nats-Msg-Id of the header block the Worker encoded", () => {
    const headers = natsHeaders()
    headers.set("Ingest-Source", "aloware")
    headers.set("Nats-Msg-Id", "aloware:Call%20Disposed:1")
    headers.set("Nats-Expected-Stream", "INGEST_CRM")
    expect(msgIdOf(utf8(String(headers)))).toBe("aloware:Call%20Disposed:1")
    expect(msgIdOf(utf8("NATS/1.0\r\nIngest-Source: x\r\n\r\n"))).toBeUndefined()
  })
})

describe("the watchdog", () => {
  const now = 1_800_000_000_000
  it("re-arms a spool with events and no alarm, or one overdue by more than a minute, and nothing else", () => {
    expect(needsRearm(5, null, now)).toBe(true)
    expect(needsRearm(5, now - STALE_ALARM_MS - 1, now)).toBe(true)
    expect(needsRearm(5, now - STALE_ALARM_MS, now)).toBe(false)
    expect(needsRearm(5, now + 1000, now)).toBe(false)
    expect(needsRearm(0, null, now)).toBe(false)
  })
})
