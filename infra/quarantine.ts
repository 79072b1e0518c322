import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"
import type { Contract } from "../contracts/contract.ts"
import { QUARANTINE_STREAM, quarantineOutcomeSubject } from "../contracts/log.ts"
import { contracts } from "../contracts/sources.ts"
import { readStream } from "./streams.ts"
import { natsHeadersFor } from "../edge/log-message.ts"
import { applyOutcomes, type QuarantineRecord, quarantineRecordOf, redrive, type RedriveOutcome } from "../edge/quarantine.ts"

/** The quarantined events (of `source`, or all), with what re-drives made of them, oldest first. */
export const readQuarantine = async (
  js: JetStreamClient,
  jsm: JetStreamManager,
  source?: string
): Promise<ReadonlyArray<QuarantineRecord>> => {
  const messages = await readStream(js, jsm, QUARANTINE_STREAM)
  const records = messages.filter((message) => message.subject.startsWith("ingest.quarantine.")).map(quarantineRecordOf)
  const outcomes = messages
    .filter((message) => message.subject.startsWith("quarantine.outcome."))
    .flatMap((message) => {
      try {
        return [JSON.parse(message.data) as RedriveOutcome]
      } catch {
        return []
      }
    })
  return applyOutcomes(records, outcomes).filter((record) => source === undefined || record.source === source)
}

/** The contract a quarantined event was judged by, from its `Ingest-Schema` (so operator-declared sources are found too). */
export const currentContract = (record: QuarantineRecord): Contract | undefined =>
  Object.values(contracts).find((contract) => contract.schemaVersion === record.schema)

export interface RedriveReport {
  readonly id: number
  readonly outcome: "redriven" | "already redriven" | "invalid" | "unknown"
  readonly detail: string
}

/**
 * Re-validates each quarantined event with the current contract and appends the ones that now pass
 * to their normal subject under their original natural key (so re-driving twice appends once: a
 * duplicate in the stream's window, a repeated dedupe key after it); the outcome of each is
 * recorded in the quarantine stream. The others stay, with the issues the current contract finds.
 */
export const redriveQuarantined = async (
  js: JetStreamClient,
  jsm: JetStreamManager,
  ids: ReadonlyArray<number>,
  contractFor: (record: QuarantineRecord) => Contract | undefined = currentContract
): Promise<ReadonlyArray<RedriveReport>> => {
  const records = new Map((await readQuarantine(js, jsm)).map((record) => [record.id, record]))
  const reports: Array<RedriveReport> = []
  for (const id of ids) {
    const record = records.get(id)
    if (record === undefined) {
      reports.push({ id, outcome: "unknown", detail: "no quarantined event has this id; see quarantine list" })
      continue
    }
    if (record.redriven !== undefined) {
      reports.push({
        id,
        outcome: "already redriven",
        detail: `appended at ${record.redriven.at} as ${record.redriven.subject} seq ${record.redriven.seq}`
      })
      continue
    }
    const contract = contractFor(record)
    if (contract === undefined) {
      reports.push({ id, outcome: "unknown", detail: `no contract has schema ${JSON.stringify(record.schema)}` })
      continue
    }
    const decision = redrive(record, contract)
    const at = new Date().toISOString()
    if (decision._tag === "StillInvalid") {
      const outcome: RedriveOutcome = { id, at, outcome: "invalid", issues: decision.issues }
      await js.publish(quarantineOutcomeSubject(record.source), JSON.stringify(outcome))
      reports.push({ id, outcome: "invalid", detail: decision.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ") })
      continue
    }
    const { message } = decision
    const ack = await js.publish(message.subject, message.data, { headers: natsHeadersFor(message) })
    const outcome: RedriveOutcome = { id, at, outcome: "redriven", subject: message.subject, seq: ack.seq }
    await js.publish(quarantineOutcomeSubject(record.source), JSON.stringify(outcome))
    reports.push({
      id,
      outcome: "redriven",
      detail: `appended as ${message.subject} seq ${ack.seq}${ack.duplicate ? " (the log already had it: stored once)" : ""}`
    })
  }
  return reports
}
