import { alowareContract } from "./aloware.ts"
import type { Contract } from "./contract.ts"
import { hubspotContract } from "./hubspot.ts"
import { oeeContract } from "./oee.ts"
import { reportsContract } from "./reports.ts"
import { retailContract } from "./retail.ts"
import { warehouseContract } from "./warehouse.ts"

/** Every contract the edge knows, by name. */
export const contracts = {
  hubspot: hubspotContract,
  aloware: alowareContract,
  warehouse: warehouseContract,
  oee: oeeContract,
  retail: retailContract,
  reports: reportsContract
} as const satisfies Record<string, Contract>

export type ContractName = keyof typeof contracts
export const contractNames = Object.keys(contracts) as ReadonlyArray<ContractName>

/** How a source proves a request is from its sender. */
export const SCHEMES = ["hubspot", "standard-webhooks", "hub-signature-256", "bearer", "basic"] as const
export type Scheme = (typeof SCHEMES)[number]

/**
 * What the edge does with the events of a request that break the contract: `quarantine` appends
 * them, as received, to the quarantine stream and the valid ones to the log (202); `reject`
 * refuses the whole request (422). Senders that never retry a 4xx need `quarantine`, or a request
 * with one bad event loses its good ones for good.
 */
export const INVALID_EVENT_POLICIES = ["quarantine", "reject"] as const
export type InvalidEventPolicy = (typeof INVALID_EVENT_POLICIES)[number]

/** A webhook source: the `:source` of `POST /v1/hooks/:source`. */
export interface SourceDefinition {
  readonly contract: ContractName
  readonly scheme: Scheme
  readonly onInvalid: InvalidEventPolicy
  /**
   * Whether its sender delivers a request again after a 503 (or a timeout). A sender that does not
   * loses the events of a request the log could not take, so the edge keeps them in its spool
   * (`SPOOL=auto`, the default) and answers 202; one that does gets today's 503 and resends.
   */
  readonly retries: boolean
}

/**
 * Whether the senders of a scheme retry, for a source declared in `SOURCES` without `retries`:
 * HubSpot retries for 24 hours and Standard Webhooks senders retry by the specification;
 * `X-Hub-Signature-256` (GitHub-style) senders do not, nor do the bearer and basic senders we know
 * (Aloware). Unknown is taken as "does not": spooling a retrying sender's events costs a row, not
 * spooling a non-retrying one's loses them.
 */
export const SCHEME_SENDERS_RETRY: Readonly<Record<Scheme, boolean>> = {
  hubspot: true,
  "standard-webhooks": true,
  "hub-signature-256": false,
  bearer: false,
  basic: false
}

/**
 * The sources every deployment has. Operators may add more (another HubSpot app, a station
 * that can only sign `X-Hub-Signature-256`) through the `SOURCES` setting.
 */
export const defaultSources: Readonly<Record<string, SourceDefinition>> = {
  // HubSpot and Aloware never retry a 4xx: their bad events are quarantined, the rest appended.
  // HubSpot retries a 5xx for 24 hours; Aloware never retries anything.
  hubspot: { contract: "hubspot", scheme: "hubspot", onInvalid: "quarantine", retries: true },
  aloware: { contract: "aloware", scheme: "bearer", onInvalid: "quarantine", retries: false },
  // Our own senders retry and can be fixed: a request with a bad event is refused whole.
  erasure: { contract: "warehouse", scheme: "standard-webhooks", onInvalid: "reject", retries: true },
  oee: { contract: "oee", scheme: "standard-webhooks", onInvalid: "reject", retries: true },
  pos: { contract: "retail", scheme: "standard-webhooks", onInvalid: "reject", retries: true }
}
