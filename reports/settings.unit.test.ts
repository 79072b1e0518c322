import { describe, expect, it } from "vitest"
import { embedUrlFor } from "./engines/chromium.ts"
import { reportSettings } from "./settings.ts"
import { DEFAULT_WORKER_SETTINGS, retryDelayMs } from "./worker.ts"

describe("the export service's settings and decisions", () => {
  it("has a default for every setting and reads each from the environment or its flag", () => {
    const defaults = reportSettings({ env: {} })
    expect(defaults.worker).toEqual(DEFAULT_WORKER_SETTINGS)
    expect(defaults.viewport).toEqual({ width: 1280, height: 720 })
    expect(defaults.chromiumBin).toBe("/usr/bin/chromium")
    const set = reportSettings({
      env: {
        REPORTS_WORKER_CONCURRENCY: "2",
        REPORTS_EXPORT_ATTEMPTS: "5",
        REPORTS_RETRY_BACKOFF_MS: "100, 500",
        REPORTS_CACHE_TTL_SECONDS: "60",
        REPORTS_VIEWPORT: "1920x1080",
        CHROMIUM_BIN: "/opt/chrome"
      },
      flags: { concurrency: "8" }
    })
    expect(set.worker).toMatchObject({ concurrency: 8, maxAttempts: 5, backoffMs: [100, 500], cache: { ttlMs: 60_000 } })
    expect(set.viewport).toEqual({ width: 1920, height: 1080 })
    expect(set.chromiumBin).toBe("/opt/chrome")
  })

  it("refuses a setting it cannot read, naming it", () => {
    expect(() => reportSettings({ env: { REPORTS_VIEWPORT: "big" } })).toThrow(/REPORTS_VIEWPORT/)
    expect(() => reportSettings({ env: { REPORTS_RETRY_BACKOFF_MS: "soon" } })).toThrow(/REPORTS_RETRY_BACKOFF_MS/)
    expect(() => reportSettings({ env: { REPORTS_WORKER_CONCURRENCY: "0" } })).toThrow(/REPORTS_WORKER_CONCURRENCY/)
  })

  it("waits the configured backoff before each retry, the last repeating, or the service's Retry-After when longer", () => {
    const settings = { backoffMs: [100, 1000] }
    expect(retryDelayMs(settings, 1)).toBe(100)
    expect(retryDelayMs(settings, 2)).toBe(1000)
    expect(retryDelayMs(settings, 7)).toBe(1000)
    expect(retryDelayMs(settings, 1, 30_000)).toBe(30_000)
    expect(retryDelayMs(settings, 2, 50)).toBe(1000)
  })

  it("adds the page and the filter to an embed URL, keeping what it had", () => {
    const url = embedUrlFor("https://app.powerbi.com/reportEmbed?reportId=r&groupId=g", "ReportSection2", "Store/Region eq 'O''Neil'")
    const parsed = new URL(url)
    expect(parsed.searchParams.get("reportId")).toBe("r")
    expect(parsed.searchParams.get("pageName")).toBe("ReportSection2")
    expect(parsed.searchParams.get("filter")).toBe("Store/Region eq 'O''Neil'")
    expect(new URL(embedUrlFor(url, "ReportSection1", undefined)).searchParams.has("filter")).toBe(false)
  })
})
