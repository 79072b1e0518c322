import { execFile } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { jetstream } from "@nats-io/jetstream"
import { Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { HubSpotEvent, hubspotContractFor } from "../contracts/hubspot.ts"
import { LogHeaders, QUARANTINE_STREAM } from "../contracts/log.ts"
import { contracts } from "../contracts/sources.ts"
import { readQuarantine, redriveQuarantined } from "../infra/quarantine.ts"
import { alowareCall, erasureEvents, hubspotBatch, postSigned } from "../infra/local/samples.ts"
import { type EdgeStack, generateSecrets, startEdgeStack } from "../infra/local/stack.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

let stack: EdgeStack

beforeAll(async () => {
  // erasure-q: a warehouse source whose operator chose quarantine over refusing whole requests.
  stack = await startEdgeStack({
    secrets: { ...generateSecrets(), "erasure-q": generateSecrets().erasure as string },
    settings: { SOURCES: JSON.stringify({ "erasure-q": { contract: "warehouse", scheme: "standard-webhooks", onInvalid: "quarantine" } }) }
  })
})

afterAll(async () => {
  await stack?.dispose()
})

const count = async (stream: string) => (await stack.jsm.streams.info(stream)).state.messages

interface Answer {
  accepted: number
  duplicates: number
  quarantined: Array<{ index: number; key?: string; id: number; duplicate: boolean; issues: Array<{ path: string; message: string }> }>
  events: Array<{ seq: number }>
}

describe("a HubSpot batch with one event that breaks the contract", () => {
  const batch = hubspotBatch(100, { firstEventId: 20_000 }).map((event, i) => (i === 3 ? { ...event, propertyValue: 42 } : event))

  it("is answered 202: the 99 valid events are appended, the bad one quarantined exactly as received with its issues", async () => {
    const [crm, quarantined] = [await count("INGEST_CRM"), await count(QUARANTINE_STREAM)]
    const response = await postSigned(stack.edge.url, "hubspot", batch, stack.secrets.hubspot as string)
    expect(response.status).toBe(202)
    const answer = (await response.json()) as Answer
    expect(answer).toMatchObject({ accepted: 99, duplicates: 0 })
    expect(answer.quarantined).toEqual([
      {
        index: 3,
        key: "62515:4242:20003",
        id: expect.any(Number),
        duplicate: false,
        issues: [{ path: "$[3].propertyValue", message: "Expected string, got 42" }]
      }
    ])
    expect(await count("INGEST_CRM")).toBe(crm + 99)
    expect(await count(QUARANTINE_STREAM)).toBe(quarantined + 1)
    const stored = await stack.jsm.streams.getMessage(QUARANTINE_STREAM, { seq: answer.quarantined[0]?.id as number })
    expect(stored?.subject).toBe("ingest.quarantine.hubspot")
    expect(stored?.json()).toEqual(batch[3])
    expect(JSON.parse(stored?.header.get(LogHeaders.issues) ?? "")).toEqual([
      { path: "$[3].propertyValue", message: "Expected string, got 42" }
    ])
    expect(stored?.header.get(LogHeaders.key)).toBe("62515:4242:20003")
    expect(stored?.header.get(LogHeaders.schema)).toBe("hubspot/v1")
  })

  it("sent again (HubSpot's retry, a new attemptNumber), changes neither the log nor the quarantine", async () => {
    const [crm, quarantined] = [await count("INGEST_CRM"), await count(QUARANTINE_STREAM)]
    const retry = batch.map((event) => ({ ...event, attemptNumber: 1 }))
    const answer = (await (await postSigned(stack.edge.url, "hubspot", retry, stack.secrets.hubspot as string)).json()) as Answer
    expect(answer).toMatchObject({ accepted: 99, duplicates: 99 })
    expect(answer.quarantined.map((entry) => entry.duplicate)).toEqual([true])
    expect([await count("INGEST_CRM"), await count(QUARANTINE_STREAM)]).toEqual([crm, quarantined])
  })

  it("is listed with its issues by `mesh quarantine list hubspot`", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", join(ROOT, "infra", "cli.ts"), "quarantine", "list", "hubspot"],
      {
        cwd: ROOT,
        env: { ...process.env, NATS_URL: stack.nats.url, NATS_USER: "admin", NATS_PASSWORD: stack.nats.admin.password }
      }
    )
    expect(stdout).toMatch(/#\d+ {2}hubspot {2}key 62515:4242:20003 .* waiting/)
    expect(stdout).toContain("$[3].propertyValue: Expected string, got 42")
  })
})

describe("re-driving quarantined events", () => {
  /** The HubSpot contract as it might be fixed: numeric property values accepted (and kept as sent). */
  const fixedHubSpot = hubspotContractFor(
    Schema.Struct({ ...HubSpotEvent.fields, propertyValue: Schema.optionalKey(Schema.Union([Schema.String, Schema.Finite])) })
  )

  it("appends those the current contract accepts under their natural key, once however often re-driven, and keeps the others with the new reason", async () => {
    const [fixable, hopeless] = hubspotBatch(2, { firstEventId: 30_000 })
    const answer = (await (
      await postSigned(
        stack.edge.url,
        "hubspot",
        [
          { ...fixable, propertyValue: 7 },
          { ...hopeless, eventId: "x", propertyValue: 8 }
        ],
        stack.secrets.hubspot as string
      )
    ).json()) as Answer
    const [fixableId, hopelessId] = answer.quarantined.map((entry) => entry.id) as [number, number]
    const js = jetstream(stack.admin)
    const resolveFixed = () => fixedHubSpot
    const crm = await count("INGEST_CRM")

    const reports = await redriveQuarantined(js, stack.jsm, [fixableId, hopelessId, 999_999], resolveFixed)
    expect(reports.map((report) => report.outcome)).toEqual(["redriven", "invalid", "unknown"])
    expect(reports[1]?.detail).toBe('$.eventId: Expected number, got "x"')
    expect(await count("INGEST_CRM")).toBe(crm + 1)
    const appended = await stack.jsm.streams.getMessage("INGEST_CRM", { last_by_subj: "ingest.crm.hubspot.contact_creation" })
    expect(appended?.header.get("Nats-Msg-Id")).toBe("hubspot:62515:4242:30000")
    expect(appended?.header.get(LogHeaders.key)).toBe("62515:4242:30000")
    expect(appended?.json()).toEqual({ ...fixable, propertyValue: 7 })

    expect((await redriveQuarantined(js, stack.jsm, [fixableId], resolveFixed)).map((report) => report.outcome)).toEqual([
      "already redriven"
    ])
    expect(await count("INGEST_CRM")).toBe(crm + 1)

    const records = await readQuarantine(js, stack.jsm, "hubspot")
    expect(records.find((record) => record.id === fixableId)?.redriven).toMatchObject({ subject: "ingest.crm.hubspot.contact_creation" })
    expect(records.find((record) => record.id === hopelessId)).toMatchObject({
      redriven: undefined,
      issues: [{ path: "$.eventId", message: 'Expected number, got "x"' }]
    })
  })

  it("with the contract the edge runs, leaves an event that still breaks it where it is", async () => {
    const [event] = hubspotBatch(1, { firstEventId: 31_000 })
    const answer = (await (
      await postSigned(stack.edge.url, "hubspot", [{ ...event, propertyValue: 9 }], stack.secrets.hubspot as string)
    ).json()) as Answer
    const id = answer.quarantined[0]?.id as number
    const reports = await redriveQuarantined(jetstream(stack.admin), stack.jsm, [id])
    expect(reports).toEqual([{ id, outcome: "invalid", detail: "$.propertyValue: Expected string, got 9" }])
    expect(contracts.hubspot.schemaVersion).toBe("hubspot/v1")
  })
})

describe("other senders' batches with bad events", () => {
  it("from a source that quarantines: the valid events appended, the bad ones quarantined", async () => {
    const events = erasureEvents(5, { firstId: 40_000 })
    const body = events.map((event, i) =>
      i === 1 ? { ...event, data: { ...event.data, initials: "J1" } } : i === 4 ? { ...event, timestamp: "soon" } : event
    )
    const warehouse = await count("INGEST_WAREHOUSE")
    const answer = (await (await postSigned(stack.edge.url, "erasure-q", body, stack.secrets["erasure-q"] as string)).json()) as Answer
    expect(answer.accepted).toBe(3)
    expect(answer.quarantined.map((entry) => [entry.index, entry.key, entry.issues.map((issue) => issue.path)])).toEqual([
      [1, "era_40001", ["$[1].data.initials"]],
      [4, "era_40004", ["$[4].timestamp"]]
    ])
    expect(await count("INGEST_WAREHOUSE")).toBe(warehouse + 3)
  })

  it("from a source that refuses whole requests: 422 and nothing appended anywhere", async () => {
    const events = erasureEvents(3, { firstId: 41_000 })
    const before = [await count("INGEST_WAREHOUSE"), await count(QUARANTINE_STREAM)]
    const response = await postSigned(
      stack.edge.url,
      "erasure",
      [events[0], { ...events[1], data: {} }, events[2]],
      stack.secrets.erasure as string
    )
    expect(response.status).toBe(422)
    expect([await count("INGEST_WAREHOUSE"), await count(QUARANTINE_STREAM)]).toEqual(before)
  })

  it("an Aloware event with a lone surrogate in its name is quarantined, not answered as our failure", async () => {
    const response = await postSigned(
      stack.edge.url,
      "aloware",
      JSON.stringify({ ...alowareCall(51_000), event: "Call \ud800Disposed" }),
      stack.secrets.aloware as string
    )
    expect(response.status).toBe(202)
    const answer = (await response.json()) as Answer
    expect(answer.quarantined[0]?.issues).toContainEqual({
      path: "$.event",
      message: "the string contains a lone surrogate (\\ud800) at character 5: strings must be well-formed Unicode"
    })
    const stored = await stack.jsm.streams.getMessage(QUARANTINE_STREAM, { seq: answer.quarantined[0]?.id as number })
    expect(stored?.json()).toMatchObject({ event: "Call \ud800Disposed" })
  })
})
