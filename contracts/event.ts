/**
 * The unit the edge appends to the log: one event of a sender's request, validated, with
 * the natural key that makes its retries collapse and the time it happened.
 */
export interface ContractEvent {
  /** Natural key, unique per source (e.g. HubSpot `portalId:subscriptionId:eventId`). */
  readonly key: string
  /** Event type as the sender names it (`contact.creation`, `erasure.success`). */
  readonly type: string
  /** When the event happened, ISO 8601 UTC. */
  readonly occurredAt: string
  /** The event exactly as the sender sent it (one element of a batch). */
  readonly payload: unknown
}

/** One `{path, message}` entry of a contract violation, as answered to the sender. */
export interface ContractIssue {
  readonly path: string
  readonly message: string
}

/** Most events one request may carry; larger batches must be split by the sender. */
export const MAX_EVENTS_PER_REQUEST = 1000
