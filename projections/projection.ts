import type { Domain } from "../contracts/log.ts"
import type { MartSet, Row } from "./table.ts"

/** One event read from the log, as the runtime hands it to a projection. */
export interface LogEvent {
  readonly seq: number
  readonly subject: string
  readonly source: string
  readonly type: string
  /** `<source>:<natural key>`: the durable dedupe key. */
  readonly dedupeKey: string
  readonly occurredAt: string
  /** When the edge received it (`Ingest-Received-At`): how late an event arrived, decided the same on every replay. */
  readonly receivedAt: string
  readonly schema: string
  readonly payload: unknown
}

/** What a projection makes of one event. */
export type Outcome =
  /** Rows to merge, by table name. */
  | { readonly _tag: "Rows"; readonly rows: Readonly<Record<string, ReadonlyArray<Row>>> }
  /** Nothing to project (an event type this projection does not read). */
  | { readonly _tag: "Skip" }
  /** The event cannot be projected; live runs dead-letter it, rebuilds stop on it. */
  | { readonly _tag: "Poison"; readonly reason: string }

export const rows = (byTable: Readonly<Record<string, ReadonlyArray<Row>>>): Outcome => ({ _tag: "Rows", rows: byTable })
export const skip: Outcome = { _tag: "Skip" }
export const poison = (reason: string): Outcome => ({ _tag: "Poison", reason })

/** An event a projection publishes back to the log (through the outbox, exactly once). */
export interface SideEffect {
  /** Deterministic: the same event always yields the same id, which becomes the `Nats-Msg-Id`. */
  readonly id: string
  /** Stream sequence of the event that caused it: effects are published in log order. */
  readonly seq: number
  readonly subject: string
  readonly data: unknown
}

/**
 * How a projection derives side effects: the rows of one of its tables it needs (as they were
 * before the batch) and a pure decision over the batch's events in log order. Side effects are
 * recorded only by live runs; a rebuild replays history without repeating them.
 */
export interface SideEffects {
  readonly state: { readonly table: string; readonly keyOf: (event: LogEvent) => ReadonlyArray<string> | undefined }
  readonly decide: (current: ReadonlyMap<string, Row>, events: ReadonlyArray<LogEvent>) => ReadonlyArray<SideEffect>
}

/** The key under which {@link SideEffects.decide} finds a state row. */
export const stateKey = (values: ReadonlyArray<unknown>): string =>
  JSON.stringify(values.map((value) => (value === null || value === undefined ? null : String(value))))

/**
 * A projection is pure: event in, rows out, over the marts it declares ({@link MartSet}). The
 * consumer runtime does the I/O around it. Adding a domain is a contract, a mart set and a
 * projection — no change to the runtime.
 */
export interface Projection extends MartSet {
  /** Bump when the projection's output changes: the marts must then be rebuilt from the log. */
  readonly version: number
  readonly domain: Domain
  readonly project: (event: LogEvent) => Outcome
  readonly effects?: SideEffects
}
