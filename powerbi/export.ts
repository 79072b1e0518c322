import { Data } from "effect"
import { type PowerBiClient, PowerBiError } from "./client.ts"

/**
 * Power BI's Export To File, as a client (powerbi.md §4): `ExportTo` → poll the export, never
 * faster than its Retry-After → download the file. A report in a workspace on a Premium, Embedded
 * or Fabric capacity; the service principal needs Report.Read.All and Dataset.Read.All.
 */

/** Why an export did not give a file: `retryable` when the same export may work later (after `retryAfterMs`). */
export class ExportFailed extends Data.TaggedError("ExportFailed")<{
  readonly reason: string
  readonly retryable: boolean
  readonly retryAfterMs?: number
}> {
  override get message(): string {
    return this.reason
  }
}

export interface ExportRequest {
  readonly groupId: string
  readonly reportId: string
  readonly format: "PNG" | "PDF"
  /** Page names (`ReportSection…`), in order; none: every page. */
  readonly pageNames?: ReadonlyArray<string>
  /** One report-level filter in URL filter syntax (all selections joined with `and`). */
  readonly filter?: string
  readonly signal: AbortSignal
  readonly onProgress?: (percent: number) => void
  /** The least time between polls (default 1000 ms); a longer Retry-After wins. */
  readonly pollMs?: number
}

interface ExportStatus {
  readonly id: string
  readonly status: "Undefined" | "NotStarted" | "Running" | "Succeeded" | "Failed"
  readonly percentComplete?: number
  readonly error?: { readonly message?: string }
}

const retryAfterMs = (response: Response): number | undefined => {
  const seconds = Number(response.headers.get("retry-after") ?? "NaN")
  return Number.isFinite(seconds) ? seconds * 1000 : undefined
}

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolveWait, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const stop = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    // The listener goes when the wait ends: a long export polls many times on one signal.
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop)
      resolveWait()
    }, ms)
    signal.addEventListener("abort", stop, { once: true })
  })

/** A refusal of the service as an export failure: its own busy answers (429, 5xx) retryable, the rest permanent with its message. */
const failureOf = (error: unknown): unknown => {
  if (!(error instanceof PowerBiError)) return error
  const busy = error.status === 429 || error.status >= 500
  return new ExportFailed({
    reason: error.message,
    retryable: busy,
    ...(error.retryAfterSeconds === undefined ? {} : { retryAfterMs: error.retryAfterSeconds * 1000 })
  })
}

/** Exports a report's pages to one file (a PDF; a PNG, or a zip of PNGs for several pages) and resolves with its bytes. */
export const exportReportToFile = async (client: PowerBiClient, request: ExportRequest): Promise<Uint8Array> => {
  const base = `/groups/${request.groupId}/reports/${request.reportId}`
  const pollMs = request.pollMs ?? 1000
  try {
    const started = await client.response(
      "POST",
      `${base}/ExportTo`,
      {
        format: request.format,
        powerBIReportConfiguration: {
          ...(request.filter === undefined ? {} : { reportLevelFilters: [{ filter: request.filter }] }),
          ...(request.pageNames === undefined || request.pageNames.length === 0
            ? {}
            : { pages: request.pageNames.map((pageName) => ({ pageName })) })
        }
      },
      request.signal
    )
    let status = (await started.json()) as ExportStatus
    let wait = retryAfterMs(started) ?? pollMs
    for (;;) {
      request.onProgress?.(status.percentComplete ?? 0)
      if (status.status === "Succeeded") break
      if (status.status === "Failed") {
        throw new ExportFailed({ reason: `the export failed: ${status.error?.message ?? "Power BI gave no reason"}`, retryable: false })
      }
      await pause(Math.max(pollMs, wait), request.signal)
      const polled = await client.response("GET", `${base}/exports/${status.id}`, undefined, request.signal)
      status = (await polled.json()) as ExportStatus
      wait = retryAfterMs(polled) ?? pollMs
      // A Failed export with Retry-After means "busy: export again later"; without, it is final.
      if (status.status === "Failed" && polled.headers.has("retry-after"))
        throw new ExportFailed({
          reason: `Power BI was busy: ${status.error?.message ?? "the export failed"}`,
          retryable: true,
          retryAfterMs: wait
        })
    }
    const file = await client.response("GET", `${base}/exports/${status.id}/file`, undefined, request.signal)
    return new Uint8Array(await file.arrayBuffer())
  } catch (error) {
    throw failureOf(error)
  }
}
