import { availableParallelism } from "node:os"
import { commaList, optionalSetting, type SettingSource, wholeNumberSetting } from "../platform/settings.ts"
import { DEFAULT_WORKER_SETTINGS, type WorkerSettings } from "./worker.ts"

/** The export service's settings (REPORTS_…), every one with a default; see docs/reports.md. */
export interface ReportSettings {
  readonly worker: WorkerSettings
  /** How long a registry change waits to be projected before the API answers 202 (REPORTS_PROJECTION_WAIT_MS). */
  readonly projectionWaitMs: number
  /** Debian's chromium unless CHROMIUM_BIN says otherwise. */
  readonly chromiumBin: string
  /** The headless engine's viewport, `<width>x<height>` (REPORTS_VIEWPORT, default 1280x720). */
  readonly viewport: { readonly width: number; readonly height: number }
  /** How long the headless engine waits for a page's `rendered` event (REPORTS_RENDER_TIMEOUT_MS). */
  readonly renderTimeoutMs: number
  /** Pages the headless engine draws at once (REPORTS_BROWSER_TABS, default the machine's cores). */
  readonly browserTabs: number
}

const viewportOf = (value: string | undefined): ReportSettings["viewport"] => {
  if (value === undefined) return { width: 1280, height: 720 }
  const match = /^(\d{3,4})x(\d{3,4})$/.exec(value.trim())
  if (match === null) throw new Error(`REPORTS_VIEWPORT must be <width>x<height> in pixels, e.g. 1280x720; got ${JSON.stringify(value)}`)
  return { width: Number(match[1]), height: Number(match[2]) }
}

export const reportSettings = (source: SettingSource): ReportSettings => {
  const whole = (env: string, fallback: number, minimum = 1, flag?: string) =>
    wholeNumberSetting(source, flag === undefined ? { env } : { env, flag }, fallback, minimum)
  const backoff = optionalSetting(source, { env: "REPORTS_RETRY_BACKOFF_MS" })
  const backoffMs = backoff === undefined ? DEFAULT_WORKER_SETTINGS.backoffMs : commaList(backoff).map(Number)
  if (backoffMs.length === 0 || backoffMs.some((ms) => !Number.isInteger(ms) || ms < 0))
    throw new Error(`REPORTS_RETRY_BACKOFF_MS must list whole milliseconds, e.g. 2000,10000,30000; got ${JSON.stringify(backoff)}`)
  const defaults = DEFAULT_WORKER_SETTINGS
  return {
    worker: {
      concurrency: whole("REPORTS_WORKER_CONCURRENCY", defaults.concurrency, 1, "concurrency"),
      maxAttempts: whole("REPORTS_EXPORT_ATTEMPTS", defaults.maxAttempts),
      timeoutMs: whole("REPORTS_EXPORT_TIMEOUT_MS", defaults.timeoutMs, 1000),
      ackWaitMs: whole("REPORTS_ACK_WAIT_MS", defaults.ackWaitMs, 1000),
      backoffMs,
      cache: {
        ttlMs: whole("REPORTS_CACHE_TTL_SECONDS", defaults.cache.ttlMs / 1000, 0) * 1000,
        maxBytes: whole("REPORTS_CACHE_MAX_BYTES", defaults.cache.maxBytes, 0)
      }
    },
    projectionWaitMs: whole("REPORTS_PROJECTION_WAIT_MS", 10_000, 0),
    chromiumBin: optionalSetting(source, { env: "CHROMIUM_BIN" }) ?? "/usr/bin/chromium",
    viewport: viewportOf(optionalSetting(source, { env: "REPORTS_VIEWPORT" })),
    renderTimeoutMs: whole("REPORTS_RENDER_TIMEOUT_MS", 30_000, 1000),
    browserTabs: whole("REPORTS_BROWSER_TABS", availableParallelism())
  }
}
