import { randomBytes } from "node:crypto"
import { request as httpRequest } from "node:http"
import { jetstream } from "@nats-io/jetstream"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DOMAINS, QUARANTINE_STREAM, streamFor } from "../contracts/log.ts"
import type { Scheme } from "../contracts/sources.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, postSigned, retailEvents, signFor } from "../infra/local/samples.ts"
import { type EdgeStack, generateSecrets, startEdgeStack } from "../infra/local/stack.ts"
import { readStream } from "../infra/streams.ts"

/**
 * Property-based fuzzing of every source's contract and verifier through the real Worker in
 * workerd: generated bodies of every kind a hostile or broken sender posts. Asserted for each: no
 * 5xx, every 4xx a JSON error naming the problem, clean batches accepted whole; and for all of them
 * together: every accepted event is in its stream and every quarantined one in the quarantine, and
 * nothing else was appended (so a rejected request appended nothing).
 */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)

interface FuzzSource {
  readonly name: string
  readonly scheme: Scheme
  readonly quarantine: boolean
  /** A valid event of the source with a fresh natural key. */
  readonly event: (n: number) => Record<string, unknown>
  /** Whether the contract takes a JSON array (HubSpot: only an array; Aloware: never). */
  readonly batches: "always" | "never" | "either"
  /** Field paths a mutation may hit. */
  readonly fields: ReadonlyArray<ReadonlyArray<string>>
}

const at = (n: number) => new Date(Date.parse("2025-01-15T06:15:00Z") + n * 1000).toISOString()
const envelopeFields = [["id"], ["type"], ["timestamp"], ["data"]]
const fuzzSources: ReadonlyArray<FuzzSource> = [
  {
    name: "hubspot",
    scheme: "hubspot",
    quarantine: true,
    batches: "always",
    event: (n) => ({
      ...(hubspotBatch(1, { firstEventId: n })[0] as Record<string, unknown>),
      subscriptionType: ["contact.creation", "deal.creation", "ticket.creation"][n % 3]
    }),
    fields: [
      "eventId",
      "subscriptionId",
      "portalId",
      "appId",
      "occurredAt",
      "subscriptionType",
      "attemptNumber",
      "objectId",
      "changeSource",
      "propertyValue"
    ].map((name) => [name])
  },
  {
    name: "aloware",
    scheme: "bearer",
    quarantine: true,
    batches: "never",
    event: (n) => alowareCall(n),
    fields: [
      ["event"],
      ["data"],
      ["data", "id"],
      ["data", "type"],
      ["data", "direction"],
      ["data", "user_id"],
      ["data", "user_name"],
      ["data", "duration"],
      ["data", "created_at"]
    ]
  },
  {
    name: "aloware-basic",
    scheme: "basic",
    quarantine: false,
    batches: "never",
    event: (n) => alowareCall(n, "2025-01-16 08:00:00"),
    fields: [["event"], ["data", "id"], ["data", "created_at"], ["data", "updated_at"]]
  },
  {
    name: "erasure",
    scheme: "standard-webhooks",
    quarantine: false,
    batches: "either",
    event: (n) => ({ ...(erasureEvents(1, { firstId: n })[0] as Record<string, unknown>), id: `era_f${n}` }),
    fields: [
      ...envelopeFields,
      ["data", "device_type"],
      ["data", "initials"],
      ["data", "job_id"],
      ["data", "duration_seconds"],
      ["data", "error_type"]
    ]
  },
  {
    name: "erasure-hub",
    scheme: "hub-signature-256",
    quarantine: true,
    batches: "either",
    event: (n) => ({ ...(erasureEvents(1, { firstId: n })[0] as Record<string, unknown>), id: `era_h${n}` }),
    fields: [...envelopeFields, ["data", "initials"], ["data", "job_id"]]
  },
  {
    name: "oee",
    scheme: "standard-webhooks",
    quarantine: false,
    batches: "either",
    event: (n) => ({ ...(oeeEvents("M-01", Date.parse(at(n)))[1] as Record<string, unknown>), id: `snap_f${n}` }),
    fields: [
      ...envelopeFields,
      ["data", "machine_id"],
      ["data", "snapshot_time"],
      ["data", "oee_pct"],
      ["data", "total_pieces"],
      ["data", "planned_production_time"]
    ]
  },
  {
    name: "pos",
    scheme: "standard-webhooks",
    quarantine: false,
    batches: "either",
    event: (n) => ({ ...(retailEvents("47", Date.parse(at(n)))[0] as Record<string, unknown>), id: `sale_f${n}` }),
    fields: [
      ...envelopeFields,
      ["data", "sale_id"],
      ["data", "store_id"],
      ["data", "quantity"],
      ["data", "unit_price"],
      ["data", "currency"]
    ]
  }
]

const deep = (depth: number, leaf: unknown = 1): unknown => {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { v: value }
  return value
}

/** Values a broken or hostile sender puts in a field. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom<unknown>(
    "a\ud800b",
    "\udc00",
    "x\u0000y",
    "",
    " padded ",
    "x".repeat(5000),
    -1,
    1.5,
    2 ** 31,
    2 ** 53 + 2,
    1e308,
    -1e308,
    "0000-06-01T00:00:00Z",
    "9999-12-31T23:00:00-02:00",
    "2025-02-30T10:00:00Z",
    "2025-01-15 10:32:00",
    "yesterday",
    null,
    true,
    [],
    {},
    Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])),
    deep(40)
  ),
  fc.string({ unit: "binary", maxLength: 30 })
)

type Mutation =
  | { readonly op: "set"; readonly field: number; readonly value: unknown }
  | { readonly op: "delete"; readonly field: number }
  | { readonly op: "extra"; readonly name: string; readonly value: unknown }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), field: fc.nat(), value: nastyValue }),
  fc.record({ op: fc.constant("delete" as const), field: fc.nat() }),
  fc.record({ op: fc.constant("extra" as const), name: fc.string({ unit: "binary", minLength: 1, maxLength: 12 }), value: nastyValue })
)

const mutate = (
  event: Record<string, unknown>,
  change: Mutation,
  fields: ReadonlyArray<ReadonlyArray<string>>
): Record<string, unknown> => {
  const copy = structuredClone(event)
  if (change.op === "extra") {
    copy[change.name] = change.value
    return copy
  }
  const path = fields[change.field % fields.length] as ReadonlyArray<string>
  let parent: Record<string, unknown> = copy
  for (const key of path.slice(0, -1)) {
    const next = parent[key]
    if (next === null || typeof next !== "object" || Array.isArray(next)) return copy
    parent = next as Record<string, unknown>
  }
  const last = path[path.length - 1] as string
  if (change.op === "delete") delete parent[last]
  else parent[last] = change.value
  return copy
}

/** One generated request: what to send, and what the oracle may say of it. */
type Case =
  | { readonly kind: "events"; readonly mutations: ReadonlyArray<Mutation | null>; readonly batched: boolean }
  | { readonly kind: "truncated"; readonly events: number; readonly cut: number }
  | { readonly kind: "raw-number"; readonly literal: string }
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "deep"; readonly depth: number }
  | { readonly kind: "too-many" }
  | { readonly kind: "huge" }
  | { readonly kind: "invalid-utf8"; readonly at: number; readonly bytes: ReadonlyArray<number> }
  | { readonly kind: "empty" }
  | { readonly kind: "content-type"; readonly contentType: string | null }
  | { readonly kind: "signature"; readonly how: "missing" | "wrong" }

const caseOf = (source: FuzzSource): fc.Arbitrary<Case> =>
  fc.oneof(
    {
      weight: 55,
      arbitrary: fc.record({
        kind: fc.constant("events" as const),
        mutations: fc.array(fc.option(mutation, { freq: 2 }), { minLength: 1, maxLength: source.batches === "never" ? 1 : 12 }),
        batched: source.batches === "always" ? fc.constant(true) : source.batches === "never" ? fc.constant(false) : fc.boolean()
      })
    },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("truncated" as const), events: fc.integer({ min: 1, max: 5 }), cut: fc.nat() }) },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("raw-number" as const),
        literal: fc.constantFrom("1e400", "-1e400", "123456789012345678901234567890", "-0", "0.0000001e-400")
      })
    },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("json" as const), value: fc.jsonValue({ maxDepth: 4 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("deep" as const), depth: fc.integer({ min: 33, max: 20_000 }) }) },
    { weight: 2, arbitrary: fc.constant({ kind: "too-many" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "huge" as const }) },
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant("invalid-utf8" as const),
        at: fc.nat(),
        bytes: fc.constantFrom([0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80])
      })
    },
    { weight: 3, arbitrary: fc.constant({ kind: "empty" as const }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("content-type" as const),
        contentType: fc.constantFrom("text/plain", "application/xml", "application/x-www-form-urlencoded", null)
      })
    },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant("signature" as const), how: fc.constantFrom("missing" as const, "wrong" as const) })
    }
  )

let stack: EdgeStack
let counter = 0
const receipts: Array<{ stream: string; seq: number; id: string }> = []
const quarantinedIds: Array<number> = []

/** Extra sources that use the schemes no default source does, and a quarantining own sender. */
const extraSources = {
  "erasure-hub": { contract: "warehouse", scheme: "hub-signature-256", onInvalid: "quarantine" },
  "aloware-basic": { contract: "aloware", scheme: "basic", onInvalid: "reject" }
}

beforeAll(async () => {
  stack = await startEdgeStack({
    secrets: {
      ...generateSecrets(),
      "erasure-hub": randomBytes(24).toString("hex"),
      "aloware-basic": `agent:${randomBytes(12).toString("hex")}`
    },
    settings: { SOURCES: JSON.stringify(extraSources) }
  })
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run), ${RUNS} bodies per source`)
}, 120_000)

afterAll(async () => {
  await stack?.dispose()
})

/**
 * POSTs a body the edge refuses before reading it all (over MAX_BODY_BYTES): Node's HTTP client
 * takes the answer as soon as it comes, as a sender's would, where fetch fails on the connection
 * the server closes while the rest of the body is still being sent.
 */
const postEarlyAnswered = (source: FuzzSource, body: string): Promise<Response> => {
  const url = `${stack.edge.url}/v1/hooks/${source.name}`
  const headers = { "content-type": "application/json", ...signFor(source.scheme, stack.secrets[source.name] as string, url, body) }
  return new Promise((resolveAnswer, reject) => {
    let answered = false
    const request = httpRequest(
      url,
      { method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (incoming) => {
        answered = true
        const chunks: Array<Buffer> = []
        const answer = () => resolveAnswer(new Response(Buffer.concat(chunks), { status: incoming.statusCode ?? 0 }))
        incoming.on("data", (chunk: Buffer) => chunks.push(chunk))
        incoming.on("end", answer)
        // The reset that follows the answer (our write of the rest of the body) is not part of it.
        incoming.on("error", answer)
      }
    )
    request.on("error", (error) => (answered ? undefined : reject(error)))
    request.on("socket", (socket) => socket.on("error", () => undefined))
    request.end(body)
  })
}

/**
 * {@link postEarlyAnswered}, sent once more when the connection is reset before any answer: under
 * load, Miniflare's entry worker in front of the Worker now and then drops a 5 MiB upload before the
 * Worker has read it (in about one run of this suite in five; noted, not fixed here). The second
 * answer must still be the 413.
 */
const postHuge = async (source: FuzzSource, body: string): Promise<Response> => {
  try {
    return await postEarlyAnswered(source, body)
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (code !== "EPIPE" && code !== "ECONNRESET") throw error
    console.log(`a 5 MiB body was reset before any answer (${String(code)}); sending it once more`)
    return postEarlyAnswered(source, body)
  }
}

/** The body, headers and signature of one case. */
const send = async (source: FuzzSource, fuzz: Case): Promise<{ response: Response; events: ReadonlyArray<boolean> | undefined }> => {
  const secret = stack.secrets[source.name] as string
  const fresh = () => source.event(100_000 + counter++)
  const json = (events: ReadonlyArray<unknown>, batched: boolean) => JSON.stringify(batched ? events : events[0])
  const post = (body: string | Uint8Array, init: { headers?: Record<string, string> } = {}) =>
    postSigned(stack.edge.url, source.name, body, secret, { scheme: source.scheme, ...init })
  switch (fuzz.kind) {
    case "events": {
      const changes = fuzz.batched ? fuzz.mutations : fuzz.mutations.slice(0, 1)
      const events = changes.map((change) => (change === null ? fresh() : mutate(fresh(), change, source.fields)))
      return { response: await post(json(events, fuzz.batched)), events: changes.map((change) => change === null) }
    }
    case "truncated": {
      const text = json(Array.from({ length: fuzz.events }, fresh), source.batches !== "never")
      return { response: await post(text.slice(0, fuzz.cut % text.length)), events: undefined }
    }
    case "raw-number": {
      const text = json([fresh()], source.batches !== "never")
      return { response: await post(text.replace(/(?<=:)\d+/, fuzz.literal)), events: undefined }
    }
    case "json":
      return { response: await post(JSON.stringify(fuzz.value)), events: undefined }
    case "deep": {
      const text = `${"[".repeat(fuzz.depth)}${"]".repeat(fuzz.depth)}`
      return { response: await post(text), events: undefined }
    }
    case "too-many":
      return { response: await post(JSON.stringify(Array.from({ length: 1001 }, fresh))), events: undefined }
    case "huge":
      return {
        response: await postHuge(source, json([{ ...fresh(), note: "x".repeat(5 * 1024 * 1024) }], source.batches !== "never")),
        events: undefined
      }
    case "invalid-utf8": {
      const bytes = new TextEncoder().encode(json([fresh()], source.batches !== "never"))
      const cut = 1 + (fuzz.at % (bytes.length - 1))
      return { response: await post(new Uint8Array([...bytes.slice(0, cut), ...fuzz.bytes, ...bytes.slice(cut)])), events: undefined }
    }
    case "empty":
      return { response: await post(""), events: undefined }
    case "content-type":
      return {
        response: await post(json([fresh()], source.batches !== "never"), {
          headers: fuzz.contentType === null ? { "content-type": "" } : { "content-type": fuzz.contentType }
        }),
        events: undefined
      }
    case "signature": {
      const body = json([fresh()], source.batches !== "never")
      const wrong =
        source.scheme === "standard-webhooks"
          ? `whsec_${randomBytes(32).toString("base64")}`
          : source.scheme === "basic"
            ? "agent:not-the-password"
            : "not-the-right-secret-at-all"
      if (fuzz.how === "wrong")
        return { response: await postSigned(stack.edge.url, source.name, body, wrong, { scheme: source.scheme }), events: undefined }
      const response = await fetch(`${stack.edge.url}/v1/hooks/${source.name}`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" }
      })
      return { response, events: undefined }
    }
  }
}

/** What the edge must have answered for `fuzz`, beyond never 5xx. */
const expectedStatuses = (source: FuzzSource, fuzz: Case, valid: ReadonlyArray<boolean> | undefined): ReadonlyArray<number> => {
  switch (fuzz.kind) {
    case "events":
      return valid?.every(Boolean) === true ? [202] : source.quarantine ? [202, 422] : [202, 422]
    case "truncated":
      return [400, 422, 202]
    case "raw-number":
      return source.quarantine ? [202, 422] : [202, 422]
    case "json":
      return [400, 422, 202]
    case "deep":
      return [422]
    case "too-many":
      return [422]
    case "huge":
      return [413]
    case "invalid-utf8":
      return [400]
    case "empty":
      return [400]
    case "content-type":
      return [415]
    case "signature":
      return [401]
  }
}

interface Answer {
  error?: string
  message?: string
  issues?: Array<{ path: string; message: string }>
  accepted?: number
  duplicates?: number
  quarantined?: Array<{ index: number; id: number; duplicate: boolean; issues: Array<{ path: string; message: string }> }>
  events?: Array<{ id: string; subject: string; seq: number; duplicate: boolean }>
}

const judge = async (source: FuzzSource, fuzz: Case): Promise<void> => {
  const { response, events } = await send(source, fuzz)
  const text = await response.text()
  const context = `${source.name} ${fuzz.kind} → ${response.status} ${text.slice(0, 300)}`
  expect(response.status, context).toBeLessThan(500)
  expect(expectedStatuses(source, fuzz, events), context).toContain(response.status)
  const answer = JSON.parse(text) as Answer
  if (response.status >= 400) {
    expect(typeof answer.error, context).toBe("string")
    expect(answer.message?.length ?? 0, context).toBeGreaterThan(0)
    if (response.status === 422) {
      expect(answer.issues?.length ?? 0, context).toBeGreaterThan(0)
      for (const issue of answer.issues ?? []) {
        expect(issue.path, context).toMatch(/^\$/)
        expect(issue.message.length, context).toBeGreaterThan(0)
      }
    }
    return
  }
  const quarantined = answer.quarantined ?? []
  const appended = answer.events ?? []
  expect(answer.accepted, context).toBe(appended.length)
  if (events !== undefined) {
    expect(appended.length + quarantined.length, context).toBe(events.length)
    // Only events the fuzzer broke can be quarantined; a source that refuses whole requests quarantines none.
    for (const entry of quarantined) expect(events[entry.index], context).toBe(false)
    if (!source.quarantine) expect(quarantined, context).toEqual([])
  }
  for (const entry of quarantined) expect(entry.issues.length, context).toBeGreaterThan(0)
  for (const receipt of appended)
    receipts.push({ stream: streamFor(receipt.subject.split(".")[1] as (typeof DOMAINS)[number]), seq: receipt.seq, id: receipt.id })
  quarantinedIds.push(...quarantined.map((entry) => entry.id))
}

/** Every message of `stream`, by sequence: its message id. */
const readIds = async (stream: string): Promise<Map<number, string>> =>
  new Map(
    (await readStream(jetstream(stack.admin), stack.jsm, stream)).map((message) => [message.seq, message.headers["Nats-Msg-Id"] ?? ""])
  )

describe(`${RUNS} generated requests per source through the Worker in workerd`, () => {
  it("are never answered 5xx, always name the problem, and append exactly the events they accepted or quarantined", async () => {
    const streams = [...DOMAINS.map(streamFor), QUARANTINE_STREAM]
    const before = Object.fromEntries(
      await Promise.all(streams.map(async (stream) => [stream, (await stack.jsm.streams.info(stream)).state.messages] as const))
    )
    await Promise.all(
      fuzzSources.map((source, i) =>
        fc.assert(
          fc.asyncProperty(caseOf(source), (fuzz) => judge(source, fuzz)),
          { seed: SEED + i, numRuns: RUNS, endOnFailure: true }
        )
      )
    )
    const logged = Object.fromEntries(await Promise.all(streams.map(async (stream) => [stream, await readIds(stream)] as const)))
    for (const receipt of receipts)
      expect(logged[receipt.stream]?.get(receipt.seq), `${receipt.stream} seq ${receipt.seq}`).toBe(receipt.id)
    for (const id of quarantinedIds) expect(logged[QUARANTINE_STREAM]?.has(id), `quarantine ${id}`).toBe(true)
    const distinct = (stream: string) =>
      new Set(
        stream === QUARANTINE_STREAM
          ? quarantinedIds
          : receipts.filter((receipt) => receipt.stream === stream).map((receipt) => receipt.seq)
      ).size
    for (const stream of streams)
      expect((logged[stream]?.size ?? 0) - (before[stream] ?? 0), `${stream}: messages beyond what was answered`).toBe(distinct(stream))
    expect(receipts.length).toBeGreaterThan(RUNS)
    expect(quarantinedIds.length).toBeGreaterThan(0)
  }, 900_000)
})
