import type { JetStreamClient } from "@nats-io/jetstream"
import { MAX_EVENTS_PER_REQUEST } from "../../contracts/event.ts"
import { LogHeaders } from "../../contracts/log.ts"
import { contracts, defaultSources } from "../../contracts/sources.ts"
import { type LogMessage, natsHeadersFor, toLogMessages } from "../../edge/log-message.ts"

/**
 * Appends events to the log exactly as the edge would (same subjects, headers and message ids),
 * without HTTP: for tests and benchmarks that need many events fast. `messageId` can give a copy
 * another `Nats-Msg-Id`, which is what the stream holds once a resend came after the window.
 */
export const appendAsEdge = async (
  js: JetStreamClient,
  source: string,
  payloads: ReadonlyArray<unknown>,
  options: {
    readonly messageId?: (message: LogMessage, index: number) => string
    /** When the edge "received" each event (`Ingest-Received-At`), to replay late arrivals. */
    readonly receivedAt?: (message: LogMessage, index: number) => string
  } = {}
): Promise<number> => {
  const definition = defaultSources[source]
  if (definition === undefined) throw new Error(`unknown source ${source}`)
  const contract = contracts[definition.contract]
  let last = 0
  for (let start = 0; start < payloads.length; start += MAX_EVENTS_PER_REQUEST) {
    const events = payloads.slice(start, start + MAX_EVENTS_PER_REQUEST).map((payload, offset) => {
      const judged = contract.judge(payload)
      if (judged._tag === "Invalid")
        throw new Error(
          `payload ${start + offset} breaks the ${contract.name} contract: ${judged.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")}`
        )
      return { index: offset, event: judged.event }
    })
    const messages = toLogMessages(source, contract, events, { receivedAt: new Date().toISOString(), traceId: "0".repeat(31) + "1" })
    const acks = await Promise.all(
      messages.map((message, offset) => {
        const headers = natsHeadersFor(message)
        const receivedAt = options.receivedAt?.(message, start + offset)
        if (receivedAt !== undefined) headers.set(LogHeaders.receivedAt, receivedAt)
        const messageId = options.messageId?.(message, start + offset)
        if (messageId !== undefined) headers.set("Nats-Msg-Id", messageId)
        return js.publish(message.subject, message.data, { headers })
      })
    )
    last = Math.max(last, ...acks.map((ack) => ack.seq))
  }
  return last
}
