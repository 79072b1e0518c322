import type { NatsConnection } from "@nats-io/nats-core"
import type postgres from "postgres"
import { projectionStatus } from "../consumers/status.ts"
import { inSharedSchema } from "../platform/ingest-schema.ts"
import { logEvent } from "../platform/logger.ts"
import { optionalSetting, SettingError, type SettingName, type SettingSource, wholeNumberSetting } from "../platform/settings.ts"
import type { Projection } from "../projections/projection.ts"
import { type PowerBiClient, PowerBiError } from "./client.ts"

/**
 * Refresh after catch-up (issue 11): import-mode Power BI datasets read the marts through the
 * OData feeds, so each is refreshed once its projection has caught up with new events — coalesced
 * to one refresh per minimum interval, within the plan's daily cap, never while a refresh of the
 * dataset runs (ours, a scheduled one or one started by hand), and never retried in a tight loop.
 *
 * Settings (read by {@link refreshSettings}; the environment only):
 *
 * - `POWERBI_REFRESH`: the datasets to refresh after each projection catches up, as
 *   `<projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…]`, projections separated by `,`;
 *   e.g. `crm=<g>/<d>,oee=<g>/<d1>;<g>/<d2>`. Spaces around the parts are ignored. A projection is
 *   listed once, a dataset under one projection only; ids are Power BI's (GUIDs: letters, digits, `-`, `_`).
 *   Not set: nothing is refreshed.
 * - `POWERBI_REFRESH_MIN_INTERVAL`: seconds between two refreshes of a dataset (default 900); catch-ups
 *   within it are coalesced into one refresh at its end.
 * - `POWERBI_REFRESH_DAILY_CAP`: refreshes of a dataset in any 24 h, scheduled ones included (default 8,
 *   shared capacity's cap; higher only with `POWERBI_REFRESH_PREMIUM`).
 * - `POWERBI_REFRESH_PREMIUM`: `true` when the workspace is on a Premium, PPU or Embedded capacity
 *   (default `false`).
 * - `POWERBI_REFRESH_OPTIONS`: enhanced-refresh options as JSON, e.g.
 *   `{"type":"full","commitMode":"transactional","retryCount":2}` (type, commitMode, maxParallelism,
 *   retryCount, objects, applyRefreshPolicy, effectiveDate, timeout); refused unless Premium. Without
 *   them a refresh is the standard one, `{"notifyOption":"NoNotification"}`.
 *
 * Every trigger and its outcome is a row of `ingest.powerbi_refreshes`; {@link refreshStatus} reads them.
 */

export const POWERBI_REFRESH: SettingName = { env: "POWERBI_REFRESH" }
export const POWERBI_REFRESH_MIN_INTERVAL: SettingName = { env: "POWERBI_REFRESH_MIN_INTERVAL" }
export const POWERBI_REFRESH_DAILY_CAP: SettingName = { env: "POWERBI_REFRESH_DAILY_CAP" }
export const POWERBI_REFRESH_PREMIUM: SettingName = { env: "POWERBI_REFRESH_PREMIUM" }
export const POWERBI_REFRESH_OPTIONS: SettingName = { env: "POWERBI_REFRESH_OPTIONS" }

/** Shared capacity's cap: eight refreshes a dataset in 24 hours, scheduled ones included. */
export const SHARED_DAILY_CAP = 8
const DAY_MS = 86_400_000

/** An import-mode dataset refreshed after `projection` catches up. */
export interface RefreshTarget {
  readonly projection: string
  readonly groupId: string
  readonly datasetId: string
}

/** The enhanced-refresh request body (Premium, PPU or Embedded only), as Power BI names its fields. */
export interface EnhancedRefreshOptions {
  readonly type?: string
  readonly commitMode?: string
  readonly maxParallelism?: number
  readonly retryCount?: number
  readonly objects?: ReadonlyArray<{ readonly table: string; readonly partition?: string }>
  readonly applyRefreshPolicy?: boolean
  readonly effectiveDate?: string
  readonly timeout?: string
}

export interface RefreshSettings {
  readonly targets: ReadonlyArray<RefreshTarget>
  readonly minIntervalMs: number
  readonly dailyCap: number
  readonly premium: boolean
  readonly options?: EnhancedRefreshOptions
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/
const SYNTAX = "<projection>=<groupId>/<datasetId>[;<groupId>/<datasetId>…], projections separated by ','"

const refuse = (name: SettingName, message: string): never => {
  throw new SettingError({ setting: name.env, message: `${name.env}${message.startsWith(":") ? "" : " "}${message}` })
}

/** The targets of `POWERBI_REFRESH`; `projections` are the names a target may use. */
const parseTargets = (text: string, projections: ReadonlyArray<string>): ReadonlyArray<RefreshTarget> => {
  const targets: Array<RefreshTarget> = []
  const seen = new Map<string, string>()
  const listed = new Set<string>()
  for (const entry of text.split(",").map((part) => part.trim())) {
    if (entry === "") continue
    const equals = entry.indexOf("=")
    if (equals < 0) refuse(POWERBI_REFRESH, `: ${JSON.stringify(entry)} has no '=': expected ${SYNTAX}`)
    const projection = entry.slice(0, equals).trim()
    if (!projections.includes(projection))
      refuse(
        POWERBI_REFRESH,
        `: ${JSON.stringify(projection)} is not a projection; the projections are ${projections.join(", ")} (in ${JSON.stringify(entry)})`
      )
    if (listed.has(projection))
      refuse(POWERBI_REFRESH, `lists ${projection} twice: list its datasets once, separated by ';' (${projection}=<g>/<d1>;<g>/<d2>)`)
    listed.add(projection)
    const datasets = entry
      .slice(equals + 1)
      .split(";")
      .map((part) => part.trim())
    if (datasets.every((part) => part === "")) refuse(POWERBI_REFRESH, `: ${projection} has no dataset: expected ${SYNTAX}`)
    for (const dataset of datasets) {
      if (dataset === "") continue
      const ids = dataset.split("/").map((part) => part.trim())
      if (ids.length !== 2)
        refuse(POWERBI_REFRESH, `: ${JSON.stringify(dataset)} (for ${projection}) is not <groupId>/<datasetId>: expected ${SYNTAX}`)
      const [groupId = "", datasetId = ""] = ids
      for (const [what, id] of [
        ["workspace (group) id", groupId],
        ["dataset id", datasetId]
      ] as const)
        if (!ID.test(id))
          refuse(
            POWERBI_REFRESH,
            `: ${JSON.stringify(id)} in ${JSON.stringify(dataset)} (for ${projection}) is not a ${what}: Power BI's ids are GUIDs (letters, digits, '-' and '_')`
          )
      const key = `${groupId}/${datasetId}`
      const before = seen.get(key)
      if (before !== undefined)
        refuse(POWERBI_REFRESH, `lists dataset ${key} twice (for ${before} and ${projection}): a dataset is refreshed for one projection`)
      seen.set(key, projection)
      targets.push({ projection, groupId, datasetId })
    }
  }
  return targets
}

const REFRESH_TYPES = ["full", "clearvalues", "calculate", "dataonly", "automatic", "defragment"]
const COMMIT_MODES = ["transactional", "partialbatch"]

/** The enhanced-refresh options of `POWERBI_REFRESH_OPTIONS`, each field checked as Power BI documents it. */
const parseOptions = (text: string): EnhancedRefreshOptions => {
  const bad = (message: string) => refuse(POWERBI_REFRESH_OPTIONS, message)
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return bad(`is not JSON (${(error as Error).message}): expected an object such as {"type":"full","commitMode":"transactional"}`)
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    return bad(`must be a JSON object such as {"type":"full"}, got ${text}`)
  const options = parsed as Record<string, unknown>
  const known = ["type", "commitMode", "maxParallelism", "retryCount", "objects", "applyRefreshPolicy", "effectiveDate", "timeout"]
  for (const key of Object.keys(options)) {
    if (key === "notifyOption")
      bad("must not hold notifyOption: Power BI takes it for a standard refresh only, and an enhanced one refuses it")
    if (!known.includes(key)) bad(`has an unknown option ${JSON.stringify(key)}; the options are ${known.join(", ")}`)
  }
  const oneOf = (key: string, values: ReadonlyArray<string>) => {
    const value = options[key]
    if (value !== undefined && (typeof value !== "string" || !values.includes(value.toLowerCase())))
      bad(`: ${key} must be one of ${values.join(", ")} (any case), got ${JSON.stringify(value)}`)
  }
  const wholeNumber = (key: string, minimum: number) => {
    const value = options[key]
    if (value !== undefined && (typeof value !== "number" || !Number.isInteger(value) || value < minimum))
      bad(`: ${key} must be a whole number of at least ${minimum}, got ${JSON.stringify(value)}`)
  }
  oneOf("type", REFRESH_TYPES)
  oneOf("commitMode", COMMIT_MODES)
  wholeNumber("maxParallelism", 1)
  wholeNumber("retryCount", 0)
  if (options.applyRefreshPolicy !== undefined && typeof options.applyRefreshPolicy !== "boolean")
    bad(`: applyRefreshPolicy must be true or false, got ${JSON.stringify(options.applyRefreshPolicy)}`)
  if (String(options.commitMode).toLowerCase() === "partialbatch" && options.applyRefreshPolicy !== false)
    bad(': commitMode partialBatch needs "applyRefreshPolicy": false, as Power BI requires')
  if (options.effectiveDate !== undefined && (typeof options.effectiveDate !== "string" || Number.isNaN(Date.parse(options.effectiveDate))))
    bad(`: effectiveDate must be a date such as "2025-01-15", got ${JSON.stringify(options.effectiveDate)}`)
  if (options.objects !== undefined) {
    const objects = options.objects
    if (
      !Array.isArray(objects) ||
      objects.length === 0 ||
      !objects.every(
        (object: { table?: unknown; partition?: unknown }) =>
          object !== null &&
          typeof object === "object" &&
          typeof object.table === "string" &&
          object.table !== "" &&
          (object.partition === undefined || typeof object.partition === "string") &&
          Object.keys(object).every((key) => key === "table" || key === "partition")
      )
    )
      bad(`: objects must be a list of {"table": …, "partition"?: …}, got ${JSON.stringify(objects)}`)
  }
  if (options.timeout !== undefined) {
    const match = typeof options.timeout === "string" ? /^(\d{1,2}):([0-5]\d):([0-5]\d)$/.exec(options.timeout) : null
    if (match === null) return bad(`: timeout must be HH:MM:SS, got ${JSON.stringify(options.timeout)}`)
    const seconds = Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3])
    const attempts = 1 + (typeof options.retryCount === "number" ? options.retryCount : 0)
    if (seconds === 0) bad(": timeout must be more than 00:00:00")
    if (seconds * attempts > 86_400)
      bad(`: timeout ${options.timeout} times ${attempts} attempts (retryCount + 1) is over the 24 h Power BI allows a refresh in all`)
  }
  return options as EnhancedRefreshOptions
}

/**
 * The refresh settings (see the module's comment), or a {@link SettingError} naming the setting and
 * what is wrong with it; `projections` are the projection names `POWERBI_REFRESH` may use.
 */
export const refreshSettings = (source: SettingSource, projections: ReadonlyArray<string>): RefreshSettings => {
  const premiumText = optionalSetting(source, POWERBI_REFRESH_PREMIUM)?.trim().toLowerCase()
  if (premiumText !== undefined && !["true", "false", "1", "0", "yes", "no"].includes(premiumText))
    refuse(POWERBI_REFRESH_PREMIUM, `must be true or false, got ${JSON.stringify(premiumText)}`)
  const premium = premiumText === "true" || premiumText === "1" || premiumText === "yes"
  const minIntervalSeconds = wholeNumberSetting(source, POWERBI_REFRESH_MIN_INTERVAL, 900, 0)
  const dailyCap = wholeNumberSetting(source, POWERBI_REFRESH_DAILY_CAP, SHARED_DAILY_CAP, 1)
  if (!premium && dailyCap > SHARED_DAILY_CAP)
    refuse(
      POWERBI_REFRESH_DAILY_CAP,
      `is ${dailyCap}, more than the ${SHARED_DAILY_CAP} refreshes a day shared capacity allows: set POWERBI_REFRESH_PREMIUM=true if the workspace is on Premium, PPU or Embedded`
    )
  const optionsText = optionalSetting(source, POWERBI_REFRESH_OPTIONS)
  if (optionsText !== undefined && !premium)
    refuse(
      POWERBI_REFRESH_OPTIONS,
      "is set, but enhanced refresh (type, commitMode, maxParallelism, retryCount, objects, …) needs a Premium, PPU or Embedded capacity and shared capacity takes notifyOption only: set POWERBI_REFRESH_PREMIUM=true if the workspace is on one, or unset POWERBI_REFRESH_OPTIONS"
    )
  const text = optionalSetting(source, POWERBI_REFRESH)
  return {
    targets: text === undefined ? [] : parseTargets(text, projections),
    minIntervalMs: minIntervalSeconds * 1000,
    dailyCap,
    premium,
    ...(optionsText === undefined ? {} : { options: parseOptions(optionsText) })
  }
}

/** The body of the refresh POST: the enhanced options when given (Premium), otherwise the standard `{"notifyOption":"NoNotification"}`. */
export const refreshBody = (options?: EnhancedRefreshOptions): Record<string, unknown> =>
  options === undefined || Object.keys(options).length === 0 ? { notifyOption: "NoNotification" } : { ...options }

/** What {@link decideRefresh} decides from. Times are milliseconds since the epoch. */
export interface RefreshInput {
  readonly now: number
  /** The projection's checkpoint (the last stream sequence its marts hold) and the stream's head. */
  readonly checkpoint: number
  readonly head: number
  /** The checkpoint the last refresh we triggered (running or completed) covered; 0 when none did. */
  readonly covered: number
  /** When refreshes of the dataset started — ours and the service's (scheduled, by hand) — at least those of the last 24 h. */
  readonly starts: ReadonlyArray<number>
  /** Whether the dataset's history shows a refresh running. */
  readonly running: boolean
  readonly minIntervalMs: number
  readonly dailyCap: number
  /** A wait Power BI asked for (Retry-After) or that a refusal or failure set: no trigger before `until`. */
  readonly hold?: { readonly until: number; readonly reason: string }
}

/** Why a dataset waits; `position-unknown` (the projection's position could not be read) comes from the runner, not the decision. */
export type WaitReason = "not-caught-up" | "nothing-new" | "running" | "held" | "min-interval" | "daily-cap" | "position-unknown"

export type RefreshDecision =
  | { readonly action: "trigger"; readonly covers: number }
  | {
      readonly action: "wait"
      readonly reason: WaitReason
      /** The earliest time a refresh may start; absent when it depends on something other than time (the projection, the running refresh). */
      readonly until?: number
      readonly message: string
    }

const iso = (ms: number) => new Date(ms).toISOString()

/** The time-bound waits of `input` (its hold, the minimum interval, the daily cap), each with the earliest time it allows. */
const timeWaits = (input: Omit<RefreshInput, "checkpoint" | "head" | "covered" | "running">) => {
  const waits: Array<{ reason: WaitReason; until: number; message: string }> = []
  if (input.hold !== undefined) waits.push({ reason: "held", until: input.hold.until, message: input.hold.reason })
  if (input.starts.length > 0) {
    const last = Math.max(...input.starts)
    waits.push({
      reason: "min-interval",
      until: last + input.minIntervalMs,
      message: `minimum interval: the last refresh started at ${iso(last)}, next at ${iso(last + input.minIntervalMs)}`
    })
  }
  const inDay = input.starts.filter((start) => start > input.now - DAY_MS).sort((a, b) => a - b)
  if (inDay.length >= input.dailyCap) {
    // Once the oldest starts leave the 24 h window, one fewer than the cap remains in it.
    const until = (inDay[inDay.length - input.dailyCap] ?? input.now) + DAY_MS
    waits.push({
      reason: "daily-cap",
      until,
      message: `daily cap: ${inDay.length} of ${input.dailyCap} in the last 24 h, next at ${iso(until)}`
    })
  }
  return waits.filter((wait) => wait.until > input.now)
}

/**
 * The earliest time a refresh may start by the clock alone (the hold, the minimum interval since the
 * last start, the daily cap): `now` when none of them stands in the way.
 */
export const nextAllowedAt = (input: Omit<RefreshInput, "checkpoint" | "head" | "covered" | "running">): number =>
  Math.max(input.now, ...timeWaits(input).map((wait) => wait.until))

/**
 * Whether to refresh a dataset now, or what it waits for and until when. A refresh is due once the
 * projection has caught up (checkpoint ≥ head) past what the last refresh covered; it waits while a
 * refresh runs, then for the latest of its hold, the minimum interval since the last start (any
 * refresh's) and the daily cap — so catch-ups within an interval coalesce into one refresh at its end.
 */
export const decideRefresh = (input: RefreshInput): RefreshDecision => {
  if (input.checkpoint < input.head)
    return {
      action: "wait",
      reason: "not-caught-up",
      message: `projection not caught up: checkpoint ${input.checkpoint} of stream head ${input.head}`
    }
  if (input.checkpoint <= input.covered)
    return {
      action: "wait",
      reason: "nothing-new",
      message: `nothing new since the last refresh (it covered checkpoint ${input.covered})`
    }
  if (input.running) return { action: "wait", reason: "running", message: "a refresh is running: waiting for it to finish" }
  const waits = timeWaits(input)
  if (waits.length === 0) return { action: "trigger", covers: input.checkpoint }
  // The one that ends last is what the dataset waits for; on a tie the cap, then the interval, says more.
  const order: ReadonlyArray<WaitReason> = ["held", "min-interval", "daily-cap"]
  const binding = waits.reduce((a, b) =>
    b.until > a.until || (b.until === a.until && order.indexOf(b.reason) > order.indexOf(a.reason)) ? b : a
  )
  return { action: "wait", reason: binding.reason, until: binding.until, message: binding.message }
}

/** A projection's position: the last stream sequence its marts hold, and the stream's head. */
export interface Position {
  readonly checkpoint: number
  readonly head: number
}

export type PositionOf = (projection: string) => Promise<Position>

/** One row of what `consumers/status.ts` projectionStatus answers (the fields used here). */
export interface StatusRow {
  readonly projection: string
  readonly checkpoint: number
  readonly head: number
}

/** A {@link PositionOf} from a source of projection status rows, asked for one projection at a time. */
export const positionFromStatus =
  (status: (projections: ReadonlyArray<string>) => Promise<ReadonlyArray<StatusRow>>): PositionOf =>
  async (projection) => {
    const row = (await status([projection])).find((candidate) => candidate.projection === projection)
    if (row === undefined) throw new Error(`no status for projection ${projection}`)
    return { checkpoint: row.checkpoint, head: row.head }
  }

/**
 * The default {@link PositionOf}: the active generation's checkpoint and the stream head, as
 * `mesh status` shows them (`consumers/status.ts` projectionStatus), for the projections by name.
 */
export const projectionPosition = (sql: postgres.Sql, nc: NatsConnection, projections: Readonly<Record<string, Projection>>): PositionOf =>
  positionFromStatus((names) =>
    projectionStatus(
      sql,
      nc,
      names.map((name) => {
        const projection = projections[name]
        if (projection === undefined) throw new Error(`no projection ${name}; the projections are ${Object.keys(projections).join(", ")}`)
        return projection
      })
    )
  )

/** The table of triggers and outcomes, made idempotently in the shared `ingest` schema. */
export const ensureRefreshTable = (sql: postgres.Sql): Promise<void> =>
  inSharedSchema(sql, async (tx) => {
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ingest.powerbi_refreshes (
      id bigserial PRIMARY KEY,
      projection text NOT NULL,
      group_id text NOT NULL,
      dataset_id text NOT NULL,
      request_id text,
      covers_checkpoint bigint NOT NULL,
      triggered_at timestamptz NOT NULL,
      status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'disabled', 'cancelled', 'unknown', 'refused', 'error')),
      finished_at timestamptz,
      error text,
      next_allowed_at timestamptz)`)
    await tx.unsafe(`CREATE INDEX IF NOT EXISTS powerbi_refreshes_dataset ON ingest.powerbi_refreshes (group_id, dataset_id, triggered_at)`)
  })

/** Row statuses of refreshes that started (they count toward the interval and the cap); `refused` and `error` are POSTs Power BI did not take. */
const STARTED = ["running", "completed", "failed", "disabled", "cancelled", "unknown"]
const COVERING = ["running", "completed"]

/** A refresh in the dataset's history (`GET …/refreshes`). */
interface HistoryEntry {
  readonly requestId?: string
  readonly refreshType?: string
  readonly startTime?: string
  readonly endTime?: string
  readonly status?: string
  readonly serviceExceptionJson?: string
}

const isRunning = (entry: HistoryEntry) => entry.status === "Unknown" && entry.endTime === undefined
const finishedStatus = (status: string | undefined) => {
  const lower = (status ?? "unknown").toLowerCase()
  return ["completed", "failed", "disabled", "cancelled"].includes(lower) ? lower : "unknown"
}

export interface RefresherOptions {
  readonly sql: postgres.Sql
  readonly client: PowerBiClient
  readonly targets: ReadonlyArray<RefreshTarget>
  readonly minIntervalMs: number
  readonly dailyCap: number
  /** Enhanced-refresh options (Premium only: {@link refreshSettings} refuses them otherwise). */
  readonly options?: EnhancedRefreshOptions
  readonly position: PositionOf
  /** The clock, in milliseconds (Date.now by default): a test steps it with the emulator's. */
  readonly now?: () => number
  /** Milliseconds between ticks run on a timer; 0 runs none, and the caller drives {@link Refresher.tick}. */
  readonly pollMs: number
}

/** What one tick did for a target. */
export interface TargetTick {
  readonly target: RefreshTarget
  readonly decision: RefreshDecision
  /** The trigger's outcome, when the decision was to trigger. */
  readonly trigger?:
    | { readonly outcome: "started"; readonly requestId: string | null }
    | { readonly outcome: "refused" | "error"; readonly error: string; readonly until: number }
  /** Refreshes of ours whose result this tick recorded. */
  readonly finished: ReadonlyArray<{ readonly requestId: string; readonly status: string; readonly error: string | null }>
}

export interface Refresher {
  /** One pass over every target: record finished refreshes, decide, trigger. Ticks run one at a time. */
  readonly tick: () => Promise<ReadonlyArray<TargetTick>>
  /** Stops the timer and waits for a tick under way. */
  readonly stop: () => Promise<void>
}

const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** How long a refused or failed POST holds the dataset, and why: never a retry in a tight loop. */
const holdAfter = (
  error: unknown,
  now: number,
  minIntervalMs: number,
  starts: ReadonlyArray<number>
): { readonly status: "refused" | "error"; readonly until: number; readonly reason: string } => {
  const interval = Math.max(minIntervalMs, 60_000)
  if (error instanceof PowerBiError && error.status === 429) {
    const seconds = error.retryAfterSeconds ?? 60
    return { status: "refused", until: now + seconds * 1000, reason: `Power BI throttled the request (429): retry after ${seconds} s` }
  }
  if (error instanceof PowerBiError && (error.status === 400 || error.status === 409) && /already executing/i.test(error.detail))
    return {
      status: "refused",
      until: now + interval,
      reason: `Power BI refused: another refresh is already executing (${error.detail}); waited out until ${iso(now + interval)}`
    }
  if (error instanceof PowerBiError && error.status === 400 && (/throttled/i.test(error.code) || /exceeded limit/i.test(error.detail))) {
    const inDay = starts.filter((start) => start > now - DAY_MS)
    const until = Math.max(now + interval, inDay.length === 0 ? 0 : Math.min(...inDay) + DAY_MS)
    return { status: "refused", until, reason: `Power BI refused: its daily refresh limit (${error.detail}); next at ${iso(until)}` }
  }
  return { status: "error", until: now + interval, reason: `${describeError(error)}; retried at ${iso(now + interval)}` }
}

const historyPath = (target: RefreshTarget) => `/groups/${target.groupId}/datasets/${target.datasetId}/refreshes`
const datasetName = (target: RefreshTarget) => `${target.groupId}/${target.datasetId}`

/**
 * Starts the refresher: makes `ingest.powerbi_refreshes` and, when `pollMs` > 0, ticks on a timer.
 * Each tick, per target: reads the dataset's history (what runs, what started in the last 24 h,
 * what became of ours), asks `position` where the projection is, decides ({@link decideRefresh}) and
 * triggers — recording every trigger, refusal and result. Two processes refreshing the same dataset
 * take turns (an advisory lock per dataset).
 */
export const startRefresher = async (options: RefresherOptions): Promise<Refresher> => {
  const { sql, client, targets, minIntervalMs, dailyCap, position } = options
  const now = options.now ?? Date.now
  await ensureRefreshTable(sql)
  /** Waits set by a failed history read (not a trigger, so not a row): in memory, per dataset. */
  const holds = new Map<string, { readonly until: number; readonly reason: string }>()

  const tickTarget = (target: RefreshTarget, positions: Map<string, Promise<Position>>): Promise<TargetTick> =>
    sql.begin(async (tx) => {
      const dataset = datasetName(target)
      const fields = { projection: target.projection, dataset }
      await tx`SELECT pg_advisory_xact_lock(hashtext(${`ingest.powerbi_refreshes:${dataset}`}))`
      const at = now()
      const memoryHold = holds.get(dataset)
      if (memoryHold !== undefined && memoryHold.until > at)
        return { target, decision: { action: "wait", reason: "held", until: memoryHold.until, message: memoryHold.reason }, finished: [] }
      let history: ReadonlyArray<HistoryEntry>
      try {
        history = (await client.request<{ value?: ReadonlyArray<HistoryEntry> }>("GET", `${historyPath(target)}?$top=60`))?.value ?? []
      } catch (error) {
        const hold = holdAfter(error, at, minIntervalMs, [])
        holds.set(dataset, hold)
        logEvent("error", "powerbi refresh history unreadable", { ...fields, error: describeError(error), retryAt: iso(hold.until) })
        return { target, decision: { action: "wait", reason: "held", until: hold.until, message: hold.reason }, finished: [] }
      }
      holds.delete(dataset)

      const finished: Array<{ requestId: string; status: string; error: string | null }> = []
      const open = await tx`SELECT id, request_id FROM ingest.powerbi_refreshes
        WHERE group_id = ${target.groupId} AND dataset_id = ${target.datasetId} AND status = 'running'`
      for (const row of open) {
        const requestId = row.request_id as string | null
        const entry = requestId === null ? undefined : history.find((candidate) => candidate.requestId === requestId)
        if (entry !== undefined && isRunning(entry)) continue
        if (entry === undefined && history.some(isRunning)) continue
        const status = entry === undefined ? "unknown" : finishedStatus(entry.status)
        const error = entry === undefined ? "Power BI's refresh history does not list this refresh" : (entry.serviceExceptionJson ?? null)
        const finishedAt = entry?.endTime === undefined ? new Date(at) : new Date(entry.endTime)
        await tx`UPDATE ingest.powerbi_refreshes SET status = ${status}, finished_at = ${finishedAt}, error = ${error} WHERE id = ${row.id}`
        finished.push({ requestId: requestId ?? "", status, error })
        logEvent(status === "completed" ? "info" : "warn", `powerbi refresh ${status}`, { ...fields, requestId, error })
      }

      let where: Position
      try {
        const pending = positions.get(target.projection) ?? position(target.projection)
        positions.set(target.projection, pending)
        where = await pending
      } catch (error) {
        logEvent("error", "powerbi refresh: projection position unknown", { ...fields, error: describeError(error) })
        return {
          target,
          decision: { action: "wait", reason: "position-unknown", message: `projection position unknown: ${describeError(error)}` },
          finished
        }
      }

      const since = new Date(at - Math.max(DAY_MS, minIntervalMs))
      const rows = await tx`SELECT request_id, covers_checkpoint, triggered_at, status, next_allowed_at, error
        FROM ingest.powerbi_refreshes WHERE group_id = ${target.groupId} AND dataset_id = ${target.datasetId}
        AND triggered_at >= ${since} ORDER BY triggered_at, id`
      const [coveredRow] = await tx`SELECT coalesce(max(covers_checkpoint), 0)::bigint AS covered FROM ingest.powerbi_refreshes
        WHERE group_id = ${target.groupId} AND dataset_id = ${target.datasetId} AND status IN ${tx(COVERING)}`
      const listed = new Set(history.map((entry) => entry.requestId))
      const starts = [
        ...history.flatMap((entry) => (entry.startTime === undefined ? [] : [Date.parse(entry.startTime)])),
        ...rows
          .filter((row) => STARTED.includes(row.status as string) && !listed.has(row.request_id as string))
          .map((row) => (row.triggered_at as Date).getTime())
      ].filter((start) => Number.isFinite(start))
      const latest = rows.at(-1)
      const held =
        latest !== undefined && (latest.status === "refused" || latest.status === "error") && latest.next_allowed_at !== null
          ? { until: (latest.next_allowed_at as Date).getTime(), reason: String(latest.error) }
          : undefined
      const input: RefreshInput = {
        now: at,
        checkpoint: where.checkpoint,
        head: where.head,
        covered: Number(coveredRow?.covered ?? 0),
        starts,
        running: history.some(isRunning),
        minIntervalMs,
        dailyCap,
        ...(held === undefined ? {} : { hold: held })
      }
      const decision = decideRefresh(input)
      if (decision.action === "wait") return { target, decision, finished }

      try {
        await client.request("POST", historyPath(target), refreshBody(options.options))
      } catch (error) {
        const hold = holdAfter(error, at, minIntervalMs, starts)
        await tx`INSERT INTO ingest.powerbi_refreshes
          (projection, group_id, dataset_id, covers_checkpoint, triggered_at, status, error, next_allowed_at)
          VALUES (${target.projection}, ${target.groupId}, ${target.datasetId}, ${decision.covers}, ${new Date(at)}, ${hold.status},
            ${hold.reason}, ${new Date(hold.until)})`
        logEvent(
          hold.status === "refused" ? "warn" : "error",
          `powerbi refresh ${hold.status === "refused" ? "refused" : "failed to start"}`,
          {
            ...fields,
            error: describeError(error),
            retryAt: iso(hold.until)
          }
        )
        return { target, decision, trigger: { outcome: hold.status, error: hold.reason, until: hold.until }, finished }
      }
      // A standard refresh's 202 carries no request id: the newest entry of the history, new since the read above, is ours.
      const newest = await client
        .request<{ value?: ReadonlyArray<HistoryEntry> }>("GET", `${historyPath(target)}?$top=1`)
        .then((answer) => answer?.value?.[0])
        .catch(() => undefined)
      const ours = newest?.requestId !== undefined && !listed.has(newest.requestId) ? newest : undefined
      const requestId = ours?.requestId ?? null
      const status = ours === undefined || isRunning(ours) ? "running" : finishedStatus(ours.status)
      const next = nextAllowedAt({ now: at, starts: [...starts, at], minIntervalMs, dailyCap })
      await tx`INSERT INTO ingest.powerbi_refreshes
        (projection, group_id, dataset_id, request_id, covers_checkpoint, triggered_at, status, finished_at, error, next_allowed_at)
        VALUES (${target.projection}, ${target.groupId}, ${target.datasetId}, ${requestId}, ${decision.covers}, ${new Date(at)}, ${status},
          ${status === "running" ? null : new Date(ours?.endTime ?? at)}, ${ours?.serviceExceptionJson ?? null}, ${new Date(next)})`
      logEvent("info", "powerbi refresh triggered", { ...fields, requestId, covers: decision.covers, nextAllowedAt: iso(next) })
      if (status !== "running" && requestId !== null) finished.push({ requestId, status, error: ours?.serviceExceptionJson ?? null })
      return { target, decision, trigger: { outcome: "started", requestId }, finished }
    }) as Promise<TargetTick>

  const runTick = async (): Promise<ReadonlyArray<TargetTick>> => {
    const positions = new Map<string, Promise<Position>>()
    const outcomes: Array<TargetTick> = []
    for (const target of targets) outcomes.push(await tickTarget(target, positions))
    return outcomes
  }

  let stopped = false
  let current: Promise<unknown> = Promise.resolve()
  let timer: ReturnType<typeof setTimeout> | undefined
  const tick = (): Promise<ReadonlyArray<TargetTick>> => {
    if (stopped) return Promise.reject(new Error("the refresher is stopped"))
    const run = current.then(runTick)
    current = run.catch(() => undefined)
    return run
  }
  const schedule = () => {
    timer = setTimeout(() => {
      tick()
        .catch((error: unknown) => logEvent("error", "powerbi refresh tick failed", { error: describeError(error) }))
        .finally(() => {
          if (!stopped) schedule()
        })
    }, options.pollMs)
  }
  if (options.pollMs > 0) schedule()
  return {
    tick,
    stop: async () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      await current
    }
  }
}

/** Per dataset, for `mesh powerbi status`: its last trigger, what became of it, and when the next may start. */
export interface RefreshStatus {
  readonly projection: string
  readonly groupId: string
  readonly datasetId: string
  readonly lastTrigger: {
    readonly at: string
    readonly requestId: string | null
    readonly coversCheckpoint: number
    readonly status: string
    readonly finishedAt: string | null
    readonly error: string | null
  }
  /** Recorded with the trigger: the earliest the next one may start (minimum interval, daily cap, or the wait a refusal set). */
  readonly nextAllowedAt: string | null
  /** Refreshes of ours that started in the 24 h before the last trigger's record was read. */
  readonly startedLast24h: number
}

/** The last trigger of every dataset the refresher has recorded, ordered by projection and dataset. */
export const refreshStatus = async (sql: postgres.Sql, now: number = Date.now()): Promise<ReadonlyArray<RefreshStatus>> => {
  await ensureRefreshTable(sql)
  const rows = await sql`SELECT DISTINCT ON (group_id, dataset_id) projection, group_id, dataset_id, request_id, covers_checkpoint,
      triggered_at, status, finished_at, error, next_allowed_at,
      (SELECT count(*)::int FROM ingest.powerbi_refreshes started WHERE started.group_id = r.group_id AND started.dataset_id = r.dataset_id
        AND started.status IN ${sql(STARTED)} AND started.triggered_at > ${new Date(now - DAY_MS)}) AS started_last_24h
    FROM ingest.powerbi_refreshes r ORDER BY group_id, dataset_id, triggered_at DESC, id DESC`
  const isoOrNull = (value: unknown) => (value === null ? null : (value as Date).toISOString())
  return rows
    .map((row) => ({
      projection: row.projection as string,
      groupId: row.group_id as string,
      datasetId: row.dataset_id as string,
      lastTrigger: {
        at: (row.triggered_at as Date).toISOString(),
        requestId: row.request_id as string | null,
        coversCheckpoint: Number(row.covers_checkpoint),
        status: row.status as string,
        finishedAt: isoOrNull(row.finished_at),
        error: row.error as string | null
      },
      nextAllowedAt: isoOrNull(row.next_allowed_at),
      startedLast24h: Number(row.started_last_24h)
    }))
    .sort((a, b) => a.projection.localeCompare(b.projection) || `${a.groupId}/${a.datasetId}`.localeCompare(`${b.groupId}/${b.datasetId}`))
}
