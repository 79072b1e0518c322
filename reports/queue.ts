import { AckPolicy, type Consumer, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream"
import { headers as natsHeaders, nanos } from "@nats-io/nats-core"
import { REPORT_EXPORTS_STREAM, REPORT_EXPORTS_SUBJECT } from "../contracts/log.ts"

/** The durable consumer every export worker shares: each job goes to one of them. */
export const EXPORT_WORKERS_CONSUMER = "report-export-workers"

/** Queues a job: its id only, deduplicated by the stream so queueing one job twice delivers it once. */
export const queueJob = async (js: JetStreamClient, id: string): Promise<void> => {
  const headers = natsHeaders()
  headers.set("Nats-Msg-Id", id)
  await js.publish(REPORT_EXPORTS_SUBJECT, id, { headers, expect: { streamName: REPORT_EXPORTS_STREAM } })
}

/**
 * The workers' consumer, made if missing and brought to `ackWaitMs` if it differs: a job not
 * acknowledged (nor marked in progress) within it is delivered again — how a job of a worker
 * that died gets done. Redeliveries are not capped here: the job's attempts are counted in
 * Postgres, where a worker gives up on it ({@link ../jobs.ts claimJob}).
 */
export const exportWorkersConsumer = async (
  js: JetStreamClient,
  jsm: JetStreamManager,
  options: { readonly ackWaitMs: number; readonly maxAckPending: number }
): Promise<Consumer> => {
  const config = {
    durable_name: EXPORT_WORKERS_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(options.ackWaitMs),
    max_ack_pending: options.maxAckPending,
    filter_subject: REPORT_EXPORTS_SUBJECT
  }
  const existing = await jsm.consumers.info(REPORT_EXPORTS_STREAM, EXPORT_WORKERS_CONSUMER).catch(() => undefined)
  if (existing === undefined) await jsm.consumers.add(REPORT_EXPORTS_STREAM, config)
  else if (existing.config.ack_wait !== config.ack_wait || existing.config.max_ack_pending !== config.max_ack_pending)
    await jsm.consumers.update(REPORT_EXPORTS_STREAM, EXPORT_WORKERS_CONSUMER, {
      ack_wait: config.ack_wait,
      max_ack_pending: config.max_ack_pending
    })
  return js.consumers.get(REPORT_EXPORTS_STREAM, EXPORT_WORKERS_CONSUMER)
}
