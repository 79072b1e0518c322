import { AckPolicy, type Consumer, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream"
import { nanos } from "@nats-io/nats-core"
import { domainSubjects, headerValues, streamFor } from "../contracts/log.ts"
import type { Projection } from "../projections/projection.ts"
import { type ReadEvent, readEventOf } from "./events.ts"
import type { Generation } from "./registry.ts"

/** Tells this process's consumers from another replica's, so two readers never delete each other's. */
const PROCESS_TAG = Math.random().toString(36).slice(2, 8)

/** The durable consumer through which this process reads one generation of a projection. */
export const consumerName = (projection: Projection, generation: Generation): string =>
  `proj_${projection.name}_g${generation.generation}_${PROCESS_TAG}`

/**
 * (Re)creates this process's durable pull consumer for the generation, delivering from
 * `checkpoint + 1`: Postgres holds the position, so reading always starts where the last
 * committed batch ended. A consumer left by a crashed process is removed by the server after five
 * idle minutes; two replicas reading at once stay correct (the checkpoint compare-and-set lets one
 * batch win) but waste work, so run one replica per projection.
 */
export const openConsumer = async (
  js: JetStreamClient,
  jsm: JetStreamManager,
  projection: Projection,
  generation: Generation,
  checkpoint: number
): Promise<Consumer> => {
  const stream = streamFor(projection.domain)
  const name = consumerName(projection, generation)
  await jsm.consumers.delete(stream, name).catch(() => undefined)
  await jsm.consumers.add(stream, {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    max_ack_pending: 20_000,
    filter_subject: domainSubjects(projection.domain),
    inactive_threshold: nanos(5 * 60_000),
    ...(checkpoint > 0
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 }
      : { deliver_policy: DeliverPolicy.All })
  })
  return js.consumers.get(stream, name)
}

export const deleteConsumer = (jsm: JetStreamManager, projection: Projection, generation: Generation): Promise<boolean> =>
  jsm.consumers.delete(streamFor(projection.domain), consumerName(projection, generation)).catch(() => false)

/** Up to `max` messages, waiting at most `expiresMs` (at least 1 s, the server's floor) to fill the batch. */
export const fetchBatch = async (consumer: Consumer, max: number, expiresMs: number): Promise<Array<JsMsg>> => {
  const messages: Array<JsMsg> = []
  for await (const message of await consumer.fetch({ max_messages: max, expires: Math.max(1000, expiresMs) })) messages.push(message)
  return messages
}

/** A log message as the projection sees it; the dedupe key is the edge's `<source>:<natural key>`. */
export const toReadEvent = (message: JsMsg): ReadEvent => {
  return readEventOf({
    seq: message.seq,
    subject: message.subject,
    headers: headerValues(message.headers),
    data: message.string(),
    appendedAt: new Date(message.info.timestampNanos / 1e6).toISOString()
  })
}
