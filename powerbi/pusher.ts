import type postgres from "postgres"
import { advanceFeed, countInserts, lastChange, readChanges, subscribeFeed, withProjectionLocked } from "../consumers/changes.ts"
import { activeGeneration } from "../consumers/registry.ts"
import { ensureRuntimeTables } from "../consumers/runtime-tables.ts"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import { logEvent } from "../platform/logger.ts"
import { qualified, quoteIdent } from "../platform/sql.ts"
import { PowerBiError } from "./client.ts"
import { datasetName, martTableOf, type PushDatasetSpec, type PushedTable, pushRow, rowProblem } from "./dataset.ts"
import { LIMITS } from "./rules.ts"
import { type Governor, holdOff, newGovernor, nextBatchSize, recordPost, waitBeforePost } from "./governor.ts"
import type { PushSink } from "./sink.ts"

/**
 * The push sink's pusher: mirrors a projection's mart tables into a push dataset, exactly once
 * across crashes (docs/powerbi.md, "Exactly once").
 *
 * Live batches record every row they insert or change in the pushed tables (a change feed,
 * `consumers/changes.ts`, in the batch's own transaction). The pusher appends inserted rows in
 * sequence order, one POST in flight per dataset, each row carrying its change's sequence number in
 * {@link PUSH_SEQ}; after each accepted POST it records, per table, the last sequence pushed and the
 * row count. A crash between a POST and that record, or an answer it cannot trust (5xx, a dropped
 * connection), is resolved by reading the table back (`COUNTROWS` and `MAX(push_seq)`): POSTs of a
 * table are sequential and each lands whole or not at all, so the highest sequence shows exactly how
 * far it got, and the count proves no POST landed twice. What cannot be appended — a changed row
 * (Power BI cannot update one), a new generation after a rebuild's switch, a table that does not
 * add up on read-back — is reloaded: the mart's rows staged at one consistent point, the table
 * cleared, the staged rows pushed in order (a crash resumes at the count read back).
 */

export interface PusherOptions {
  readonly sql: postgres.Sql
  readonly sink: PushSink
  readonly spec: PushDatasetSpec
  /** The service's clock in milliseconds (the emulator's may run fast). */
  readonly clock?: () => number
  /** Waits `ms` of the service's clock. */
  readonly sleep?: (ms: number) => Promise<void>
  /** Called at each step that matters to crash safety; tests kill the process in it. */
  readonly onStep?: (step: PushStep, table: string) => void
  readonly governor?: Governor
}

export type PushStep = "before-post" | "after-post" | "after-record" | "after-clear"

interface TableState {
  readonly table: string
  generation: number
  phase: "reload" | "append" | "blocked"
  cursor: number
  rows: number
  reloadThrough: number
  cleared: boolean
  staged: number
}

/** The pusher's own tables: per dataset and table, how far it pushed, and the rows staged for a reload. */
export const ensurePushTables = async (sql: postgres.Sql): Promise<void> => {
  await ensureRuntimeTables(sql)
  await inSharedSchema(sql, async (tx) => {
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.powerbi_datasets (
      name text PRIMARY KEY,
      projection text NOT NULL,
      group_id text NOT NULL,
      dataset_id text NOT NULL,
      provisioned_at timestamptz NOT NULL DEFAULT now())`)
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.powerbi_tables (
      dataset text NOT NULL,
      table_name text NOT NULL,
      generation integer NOT NULL,
      phase text NOT NULL CHECK (phase IN ('reload', 'append', 'blocked')),
      cursor bigint NOT NULL DEFAULT 0,
      rows bigint NOT NULL DEFAULT 0,
      reload_through bigint NOT NULL DEFAULT 0,
      cleared boolean NOT NULL DEFAULT false,
      staged integer NOT NULL DEFAULT 0,
      rows_pushed bigint NOT NULL DEFAULT 0,
      posts bigint NOT NULL DEFAULT 0,
      throttled bigint NOT NULL DEFAULT 0,
      uncertain bigint NOT NULL DEFAULT 0,
      reloads integer NOT NULL DEFAULT 0,
      last_post_at timestamptz,
      last_error text,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (dataset, table_name))`)
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.powerbi_staging (
      dataset text NOT NULL,
      table_name text NOT NULL,
      ord integer NOT NULL,
      row jsonb NOT NULL,
      PRIMARY KEY (dataset, table_name, ord))`)
  })
}

/** Records where the dataset lives (after provisioning). */
export const recordDataset = async (sql: postgres.Sql, spec: PushDatasetSpec, groupId: string, datasetId: string): Promise<void> => {
  // Another dataset under the name (recreated, or another workspace): what was pushed is not there; start again.
  await sql`DELETE FROM ingest.powerbi_tables WHERE dataset = ${datasetName(spec)}
            AND EXISTS (SELECT 1 FROM ingest.powerbi_datasets d WHERE d.name = ${datasetName(spec)} AND (d.dataset_id, d.group_id) <> (${datasetId}, ${groupId}))`
  await sql`INSERT INTO ingest.powerbi_datasets (name, projection, group_id, dataset_id) VALUES (${datasetName(spec)}, ${spec.marts.name}, ${groupId}, ${datasetId})
            ON CONFLICT (name) DO UPDATE SET group_id = EXCLUDED.group_id, dataset_id = EXCLUDED.dataset_id, provisioned_at = now()`
}

const feedName = (spec: PushDatasetSpec) => `powerbi:${datasetName(spec)}`

/** Power BI refused the request for its content, or the dataset is gone: retrying the same request cannot help. */
const isRefusal = (error: unknown): error is PowerBiError =>
  error instanceof PowerBiError && error.status >= 400 && error.status < 500 && error.status !== 429

const MAX_BACKOFF_MS = 60_000

export interface Pusher {
  /** Pushes everything recorded so far; returns the rows pushed. */
  readonly round: () => Promise<number>
}

export const pusher = (options: PusherOptions): Pusher => {
  const { sql, sink, spec } = options
  const clock = options.clock ?? Date.now
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)))
  const governor = options.governor ?? newGovernor(clock())
  const dataset = datasetName(spec)
  const projection = spec.marts.name
  const step = (name: PushStep, table: string) => options.onStep?.(name, table)
  const states = new Map<string, TableState>()
  let resolved = false
  let failures = 0

  const load = async () => {
    const rows = await sql`SELECT * FROM ingest.powerbi_tables WHERE dataset = ${dataset}`
    // In place: a loop holding a table's state sees what a reload started underneath it set.
    for (const row of rows)
      states.set(
        row.table_name as string,
        Object.assign(states.get(row.table_name as string) ?? {}, {
          table: row.table_name as string,
          generation: Number(row.generation),
          phase: row.phase as TableState["phase"],
          cursor: Number(row.cursor),
          rows: Number(row.rows),
          reloadThrough: Number(row.reload_through),
          cleared: row.cleared as boolean,
          staged: Number(row.staged)
        })
      )
  }

  const save = async (
    state: TableState,
    extra: { posted?: number; throttled?: boolean; uncertain?: boolean; error?: string | null } = {}
  ) => {
    await sql`UPDATE ingest.powerbi_tables SET generation = ${state.generation}, phase = ${state.phase}, cursor = ${state.cursor}, rows = ${state.rows},
                reload_through = ${state.reloadThrough}, cleared = ${state.cleared}, staged = ${state.staged},
                rows_pushed = rows_pushed + ${extra.posted ?? 0}, posts = posts + ${extra.posted === undefined ? 0 : 1},
                throttled = throttled + ${extra.throttled === true ? 1 : 0}, uncertain = uncertain + ${extra.uncertain === true ? 1 : 0},
                last_post_at = CASE WHEN ${extra.posted !== undefined} THEN now() ELSE last_post_at END,
                last_error = CASE WHEN ${extra.error !== undefined} THEN ${extra.error ?? null} ELSE last_error END, updated_at = now()
              WHERE dataset = ${dataset} AND table_name = ${state.table}`
  }

  /** Stages the mart rows of `tables` at one consistent point (the projection locked) and marks them for reload. */
  const startReload = async (tables: ReadonlyArray<PushedTable>, why: string) => {
    logEvent("info", "reloading push tables from the marts", { dataset, tables: tables.map((table) => table.as), why })
    await withProjectionLocked(sql, projection, async (tx, active) => {
      await subscribeFeed(
        tx,
        feedName(spec),
        projection,
        spec.tables.map((table) => table.from)
      )
      const through = await lastChange(tx, projection)
      for (const table of tables) {
        const mart = martTableOf(spec, table)
        await tx`DELETE FROM ingest.powerbi_staging WHERE dataset = ${dataset} AND table_name = ${table.from}`
        const staged = await tx.unsafe(
          `INSERT INTO ingest.powerbi_staging (dataset, table_name, ord, row)
           SELECT $1, $2, row_number() OVER (ORDER BY ${mart.key.map((column) => `t.${quoteIdent(column)}`).join(", ")}), to_jsonb(t)
           FROM ${qualified(active.schema, mart.name)} t`,
          [dataset, table.from]
        )
        await tx`INSERT INTO ingest.powerbi_tables (dataset, table_name, generation, phase, cursor, rows, reload_through, cleared, staged, reloads)
                 VALUES (${dataset}, ${table.from}, ${active.generation}, 'reload', ${through}, 0, ${through}, false, ${staged.count}, 1)
                 ON CONFLICT (dataset, table_name) DO UPDATE SET generation = EXCLUDED.generation, phase = 'reload', cursor = EXCLUDED.cursor,
                   rows = 0, reload_through = EXCLUDED.reload_through, cleared = false, staged = EXCLUDED.staged,
                   reloads = ingest.powerbi_tables.reloads + 1, last_error = NULL, updated_at = now()`
      }
    })
    await load()
  }

  /** Waits as the governor says, then POSTs; "retry" when throttled, or when the outcome was unknown (then settled by read-back). */
  const post = async (state: TableState, table: PushedTable, rows: ReadonlyArray<Record<string, unknown>>): Promise<"posted" | "retry"> => {
    const large = [...states.values()].some((candidate) => candidate.rows >= LIMITS.largeTableRows)
    for (
      let wait = waitBeforePost(governor, clock(), rows.length, large);
      wait > 0;
      wait = waitBeforePost(governor, clock(), rows.length, large)
    )
      await sleep(wait)
    step("before-post", table.from)
    recordPost(governor, clock(), rows.length)
    try {
      await sink.push(table.as, rows)
      failures = 0
      step("after-post", table.from)
      return "posted"
    } catch (error) {
      if (error instanceof PowerBiError && error.status === 429) {
        holdOff(governor, clock(), (error.retryAfterSeconds ?? 1) * 1000)
        logEvent("warn", "Power BI throttled a POST; waiting as it asked", {
          dataset,
          table: table.as,
          retryAfterSeconds: error.retryAfterSeconds
        })
        await save(state, { throttled: true })
        return "retry"
      }
      if (isRefusal(error)) throw error
      failures++
      logEvent("warn", "a POST's outcome is unknown; reading the table back", { dataset, table: table.as, error: String(error) })
      await save(state, { uncertain: true })
      await sleep(Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 8)))
      await resolve(table)
      return "retry"
    }
  }

  /** Reads the table back and sets the state to what landed; a table that does not add up is reloaded. */
  const resolve = async (table: PushedTable): Promise<void> => {
    const state = states.get(table.from)
    if (state === undefined || state.phase === "blocked" || (state.phase === "reload" && !state.cleared)) return
    const back = await sink.readBack(table.as)
    if (state.phase === "reload") {
      if (back.rows <= state.staged) {
        if (back.rows !== state.rows)
          logEvent("info", "a reload POST had landed before the crash", { dataset, table: table.as, rows: back.rows })
        state.rows = back.rows
        await save(state)
        return
      }
    } else {
      const at = { projection, generation: state.generation, table: table.from }
      if (back.rows === state.rows && (back.maxSeq ?? 0) <= state.cursor) return
      if (
        back.maxSeq !== null &&
        back.maxSeq > state.cursor &&
        back.rows === state.rows + (await countInserts(sql, at, state.cursor, back.maxSeq))
      ) {
        logEvent("info", "a POST had landed before it was recorded; taking it as pushed", {
          dataset,
          table: table.as,
          through: back.maxSeq
        })
        state.cursor = back.maxSeq
        state.rows = back.rows
        await save(state)
        return
      }
    }
    logEvent("warn", "the table in Power BI does not add up; reloading it", {
      dataset,
      table: table.as,
      expected: state.rows,
      found: back.rows
    })
    await startReload([table], "read-back mismatch")
  }

  const block = async (state: TableState, table: PushedTable, reason: string) => {
    logEvent("error", "a push table is blocked", { dataset, table: table.as, reason })
    state.phase = "blocked"
    await save(state, { error: reason })
  }

  /**
   * Sends one POST of mart rows (each with the sequence `seqOf` gives) and records it: 0 when it must
   * be tried again (throttled, or an outcome the read-back settled), "blocked" at a row Power BI would refuse.
   */
  const send = async (
    state: TableState,
    table: PushedTable,
    rows: ReadonlyArray<Record<string, unknown>>,
    seqOf: (index: number) => number,
    advance: () => void
  ): Promise<number | "blocked"> => {
    const mart = martTableOf(spec, table)
    const problem = rows.map((row) => rowProblem(table, mart, row)).find((found) => found !== undefined)
    if (problem !== undefined) {
      await block(state, table, problem)
      return "blocked"
    }
    const outcome = await post(
      state,
      table,
      rows.map((row, i) => pushRow(mart, row, seqOf(i)))
    )
    if (outcome === "retry") return 0
    advance()
    state.rows += rows.length
    await save(state, { posted: rows.length, error: null })
    step("after-record", table.from)
    return rows.length
  }

  /** Continues a reload from the count pushed so far; returns the rows pushed. */
  const continueReload = async (state: TableState, table: PushedTable): Promise<number> => {
    if (!state.cleared) {
      await sink.clear(table.as)
      step("after-clear", table.from)
      state.cleared = true
      state.rows = 0
      await save(state)
    }
    let pushed = 0
    for (;;) {
      if (state.phase !== "reload") return pushed
      const staged =
        await sql`SELECT row FROM ingest.powerbi_staging WHERE dataset = ${dataset} AND table_name = ${table.from} AND ord > ${state.rows}
                               ORDER BY ord LIMIT ${nextBatchSize(governor, Math.max(1, state.staged - state.rows))}`
      if (staged.length === 0) {
        state.phase = "append"
        state.cursor = state.reloadThrough
        await save(state)
        await sql`DELETE FROM ingest.powerbi_staging WHERE dataset = ${dataset} AND table_name = ${table.from}`
        logEvent("info", "push table reloaded", { dataset, table: table.as, rows: state.rows })
        return pushed
      }
      const marts = staged.map((row) => row.row as Record<string, unknown>)
      const sent = await send(
        state,
        table,
        marts,
        () => state.reloadThrough,
        () => {}
      )
      if (sent === "blocked") return pushed
      pushed += sent
    }
  }

  /** Appends the table's recorded inserts up to `horizon`; a changed row turns it into a reload. */
  const append = async (state: TableState, table: PushedTable, horizon: number): Promise<number> => {
    let pushed = 0
    for (;;) {
      if (state.phase !== "append" || state.cursor >= horizon) return pushed
      const at = { projection, generation: state.generation, table: table.from }
      const changes = (await readChanges(sql, at, state.cursor, nextBatchSize(governor, Number.MAX_SAFE_INTEGER))).filter(
        (change) => change.seq <= horizon
      )
      if (changes.length === 0) {
        state.cursor = horizon
        await save(state)
        return pushed
      }
      if (changes.some((change) => change.op === "update")) {
        await startReload([table], "a row changed in the marts, and Power BI cannot update a pushed row")
        const reloaded = states.get(table.from) as TableState
        return pushed + (await continueReload(reloaded, table))
      }
      const seqs = changes.map((change) => change.seq)
      const sent = await send(
        state,
        table,
        changes.map((change) => change.row),
        (i) => seqs[i] as number,
        () => (state.cursor = seqs[seqs.length - 1] as number)
      )
      if (sent === "blocked") return pushed
      pushed += sent
    }
  }

  const round = async (): Promise<number> => {
    await load()
    const active = await activeGeneration(sql, projection)
    if (active === undefined) return 0
    const stale = spec.tables.filter((table) => states.get(table.from)?.generation !== active.generation)
    if (stale.length > 0)
      await startReload(
        stale,
        states.size === 0 ? "first push of this dataset" : `generation ${active.generation} is now the one readers see`
      )
    if (!resolved) {
      for (const table of spec.tables) await resolve(table)
      resolved = true
    }
    let pushed = 0
    try {
      for (const table of spec.tables) {
        const state = states.get(table.from) as TableState
        if (state.phase === "blocked") break
        if (state.phase === "reload") pushed += await continueReload(state, table)
      }
      const horizon = await lastChange(sql, projection)
      // Dimensions are listed first: every fact up to the horizon finds its dimension rows already
      // pushed. Behind a blocked table nothing moves, so no fact ever references a row not pushed.
      for (const table of spec.tables) {
        const state = states.get(table.from) as TableState
        if (state.phase === "blocked") break
        if (state.phase === "append") pushed += await append(state, table, horizon)
        if ((state.phase as TableState["phase"]) === "blocked") break
      }
    } catch (error) {
      if (!isRefusal(error)) throw error
      const table = spec.tables.find((candidate) => error.path.includes(`/tables/${encodeURIComponent(candidate.as)}/`))
      const state = table === undefined ? undefined : states.get(table.from)
      if (table === undefined || state === undefined || error.status === 404) throw error
      await block(state, table, error.message)
    }
    const consumed = Math.min(
      ...spec.tables.map((table) => {
        const state = states.get(table.from) as TableState
        return state.phase === "reload" ? state.reloadThrough : state.cursor
      })
    )
    await advanceFeed(sql, feedName(spec), projection, consumed)
    return pushed
  }

  return { round }
}

/** Makes every table of the dataset reload from the marts at the next round (after a blocked table's rows were fixed). */
export const requestReload = async (sql: postgres.Sql, spec: PushDatasetSpec): Promise<number> =>
  (await sql`DELETE FROM ingest.powerbi_tables WHERE dataset = ${datasetName(spec)}`).count

/** Per dataset and table: rows pushed and in Power BI, the backlog, POSTs, 429s, uncertain answers, reloads, the last POST and error. */
export const pushStatus = async (sql: postgres.Sql) => {
  await ensurePushTables(sql)
  const rows = await sql`SELECT t.*, (SELECT count(*) FROM ingest.changes c JOIN ingest.powerbi_datasets d ON d.name = t.dataset
                                      WHERE c.projection = d.projection AND c.table_name = t.table_name AND c.generation = t.generation
                                        AND c.seq > t.cursor)::bigint AS backlog
                         FROM ingest.powerbi_tables t ORDER BY t.dataset, t.table_name`
  return rows.map((row) => ({
    dataset: row.dataset as string,
    table: row.table_name as string,
    generation: Number(row.generation),
    phase: row.phase as string,
    rowsInPowerBi: Number(row.rows),
    backlog: row.phase === "reload" ? Number(row.staged) - Number(row.rows) : Number(row.backlog),
    rowsPushed: Number(row.rows_pushed),
    posts: Number(row.posts),
    throttled: Number(row.throttled),
    uncertain: Number(row.uncertain),
    reloads: Number(row.reloads),
    lastPostAt: row.last_post_at === null ? null : (row.last_post_at as Date).toISOString(),
    lastError: row.last_error as string | null
  }))
}
