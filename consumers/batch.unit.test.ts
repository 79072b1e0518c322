import { describe, expect, it } from "vitest"
import { type LogEvent, poison, type Projection, rows, skip } from "../projections/projection.ts"
import { integer, text } from "../projections/table.ts"
import { decideBatch, effectStateKeys } from "./batch.ts"
import type { ReadEvent } from "./events.ts"

/** A projection of `{key, n}` payloads: `n` below 0 is poison, `n` of 0 is skipped, `n` of 13 makes it throw. */
const counter: Projection = {
  name: "counter",
  version: 1,
  domain: "warehouse",
  tables: [
    { name: "totals", columns: [text("key"), integer("n")], key: ["key"], merge: "upsert" },
    { name: "log", columns: [text("id"), integer("n")], key: ["id"], merge: "insert" }
  ],
  published: ["totals"],
  project: (event) => {
    const { key, n } = event.payload as { key: string; n: number }
    if (n === 13) throw new Error("unlucky")
    if (n < 0) return poison(`n must not be negative, got ${n}`)
    if (n === 0) return skip
    return rows({ log: [{ id: `${event.seq}`, n }], totals: [{ key, n }] })
  }
}

const event = (seq: number, dedupeKey: string, payload: { key: string; n: number }): ReadEvent => ({
  seq,
  subject: "ingest.warehouse.test.counted",
  source: "test",
  type: "counted",
  dedupeKey,
  occurredAt: "2025-01-15T10:00:00.000Z",
  receivedAt: "2025-01-15T10:00:01.000Z",
  schema: "test/v1",
  payload,
  headers: {},
  data: JSON.stringify(payload)
})

describe("a batch's decision", () => {
  it("lets the first event of a key in log order claim it and drops later copies and keys recorded before", () => {
    const events = [
      event(1, "a", { key: "x", n: 1 }),
      event(2, "a", { key: "x", n: 5 }),
      event(3, "b", { key: "y", n: 2 }),
      event(4, "c", { key: "z", n: 3 })
    ]
    const decision = decideBatch(counter, events, new Set(["c"]), "collect")
    expect(decision).toMatchObject({ _tag: "Decided", applied: 2, duplicates: 2, skipped: 0, dead: [] })
    if (decision._tag !== "Decided") throw new Error("decided")
    expect(decision.recorded.map((recorded) => recorded.seq)).toEqual([1, 3])
  })

  it("gives each table its rows in the projection's declaration order, folded as the table merges them", () => {
    const events = [event(1, "a", { key: "x", n: 1 }), event(2, "b", { key: "x", n: 7 }), event(3, "c", { key: "y", n: 2 })]
    const decision = decideBatch(counter, events, new Set(), "collect")
    if (decision._tag !== "Decided") throw new Error("decided")
    expect(decision.writes.map((write) => [write.table.name, write.rows])).toEqual([
      [
        "totals",
        [
          { key: "x", n: 7 },
          { key: "y", n: 2 }
        ]
      ],
      [
        "log",
        [
          { id: "1", n: 1 },
          { id: "2", n: 7 },
          { id: "3", n: 2 }
        ]
      ]
    ])
  })

  it("dead-letters a poison event without claiming its key, so a later valid copy still counts", () => {
    const events = [event(1, "a", { key: "x", n: -1 }), event(2, "a", { key: "x", n: 4 })]
    const decision = decideBatch(counter, events, new Set(), "collect")
    if (decision._tag !== "Decided") throw new Error("decided")
    expect(decision.dead).toEqual([{ event: events[0], reason: "n must not be negative, got -1" }])
    expect(decision.recorded).toEqual([events[1]])
    expect(decision.applied).toBe(1)
  })

  it("takes a projection that throws on an event for poison, naming the error", () => {
    const decision = decideBatch(counter, [event(1, "a", { key: "x", n: 13 })], new Set(), "collect")
    if (decision._tag !== "Decided") throw new Error("decided")
    expect(decision.dead.map((dead) => dead.reason)).toEqual(["the projection failed on this event: unlucky"])
  })

  it("records a skipped event's key (it was seen) but writes nothing for it", () => {
    const decision = decideBatch(counter, [event(1, "a", { key: "x", n: 0 }), event(2, "a", { key: "x", n: 3 })], new Set(), "collect")
    expect(decision).toMatchObject({ _tag: "Decided", skipped: 1, duplicates: 1, applied: 0, writes: [] })
  })

  it("in a rebuild, stops at the first poison event and names it, writing nothing", () => {
    const events = [event(1, "a", { key: "x", n: 1 }), event(2, "b", { key: "y", n: -2 }), event(3, "c", { key: "z", n: -3 })]
    expect(decideBatch(counter, events, new Set(), "stop")).toEqual({
      _tag: "PoisonFound",
      event: events[1],
      reason: "n must not be negative, got -2"
    })
  })

  it("decides the same whatever the batch boundaries", () => {
    const events = [1, 2, 3, 4, 5, 6].map((seq) => event(seq, `k${seq % 3}`, { key: `x${seq % 2}`, n: seq === 2 ? -1 : seq }))
    const whole = decideBatch(counter, events, new Set(), "collect")
    if (whole._tag !== "Decided") throw new Error("decided")
    const claimed = new Set<string>()
    const recorded: Array<number> = []
    for (const slice of [events.slice(0, 2), events.slice(2, 5), events.slice(5)]) {
      const part = decideBatch(counter, slice, claimed, "collect")
      if (part._tag !== "Decided") throw new Error("decided")
      for (const claimedEvent of part.recorded) {
        claimed.add(claimedEvent.dedupeKey)
        recorded.push(claimedEvent.seq)
      }
    }
    expect(recorded).toEqual(whole.recorded.map((claimedEvent) => claimedEvent.seq))
  })
})

describe("the state side effects read", () => {
  it("is each key the events name once, and none for events that name none", () => {
    const spec = {
      state: {
        table: "totals",
        keyOf: (e: LogEvent) => ((e.payload as { n: number }).n > 0 ? [(e.payload as { key: string }).key] : undefined)
      },
      decide: () => []
    }
    const events = [
      event(1, "a", { key: "x", n: 1 }),
      event(2, "b", { key: "x", n: 2 }),
      event(3, "c", { key: "y", n: 0 }),
      event(4, "d", { key: "z", n: 1 })
    ]
    expect(effectStateKeys(spec, events)).toEqual([["x"], ["z"]])
  })
})
