import type { Domain } from "../contracts/log.ts"
import type { Column, Row, TableSpec } from "./table.ts"

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

/** A published view's columns, in order, and the columns that identify a row (its paging key). */
export interface ViewSpec {
  readonly name: string
  readonly columns: ReadonlyArray<Column>
  readonly key: ReadonlyArray<string>
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
export const stateKey = (values: ReadonlyArray<unknown>): string => JSON.stringify(values.map((value) => (value === null || value === undefined ? null : String(value))))

/**
 * A projection is pure: event in, rows out. The consumer runtime does the I/O around it. Adding a
 * domain is a contract, a projection and its tables — no change to the runtime.
 */
export interface Projection {
  readonly name: string
  /** Bump when the projection's output changes: the marts must then be rebuilt from the log. */
  readonly version: number
  readonly domain: Domain
  readonly tables: ReadonlyArray<TableSpec>
  /** Views and seed rows created with the tables, in the projection's schema. */
  readonly extraSql?: (schema: string) => ReadonlyArray<string>
  /** Reader-facing objects: table and view names published as `mart_<projection>.<name>` ({@link publishedSchema}). */
  readonly published: ReadonlyArray<string>
  /** The shape of each view in {@link extraSql} that is published: what readers and the read API see. */
  readonly views?: ReadonlyArray<ViewSpec>
  readonly project: (event: LogEvent) => Outcome
  readonly effects?: SideEffects
}

/**
 * The schema a projection publishes its marts in, `mart_<name>`: each domain its own namespace, so
 * two domains' `dim_date` never meet in one name.
 */
export const publishedSchema = (projection: Pick<Projection, "name">): string => `mart_${projection.name}`

/** Names published by more than one projection (into one schema), or by one projection twice: none may be. */
export const publishedClashes = (projections: ReadonlyArray<Pick<Projection, "name" | "published">>): ReadonlyArray<string> => {
  const seen = new Map<string, number>()
  for (const projection of projections) for (const name of projection.published) {
    const qualified = `${publishedSchema(projection)}.${name}`
    seen.set(qualified, (seen.get(qualified) ?? 0) + 1)
  }
  return [...seen].filter(([, count]) => count > 1).map(([name]) => name)
}
