import { alowareContract } from "./aloware.ts"
import type { Contract } from "./contract.ts"
import { hubspotContract } from "./hubspot.ts"
import { oeeContract } from "./oee.ts"
import { retailContract } from "./retail.ts"
import { warehouseContract } from "./warehouse.ts"

/** Every contract the edge knows, by name. */
export const contracts = {
  hubspot: hubspotContract,
  aloware: alowareContract,
  warehouse: warehouseContract,
  oee: oeeContract,
  retail: retailContract
} as const satisfies Record<string, Contract>

export type ContractName = keyof typeof contracts
export const contractNames = Object.keys(contracts) as ReadonlyArray<ContractName>

/** How a source proves a request is from its sender. */
export const SCHEMES = ["hubspot", "standard-webhooks", "hub-signature-256", "bearer", "basic"] as const
export type Scheme = (typeof SCHEMES)[number]

/** A webhook source: the `:source` of `POST /v1/hooks/:source`. */
export interface SourceDefinition {
  readonly contract: ContractName
  readonly scheme: Scheme
}

/**
 * The sources every deployment has. Operators may add more (another HubSpot app, a station
 * that can only sign `X-Hub-Signature-256`) through the `SOURCES` setting.
 */
export const defaultSources: Readonly<Record<string, SourceDefinition>> = {
  hubspot: { contract: "hubspot", scheme: "hubspot" },
  aloware: { contract: "aloware", scheme: "bearer" },
  erasure: { contract: "warehouse", scheme: "standard-webhooks" },
  oee: { contract: "oee", scheme: "standard-webhooks" },
  pos: { contract: "retail", scheme: "standard-webhooks" }
}
