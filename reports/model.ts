import type { FilterValue, ReportEngine, ReportFilter } from "../contracts/reports.ts"

/** A report as the registry holds it (the `reports` mart's `reports` view). */
export interface Report {
  readonly report_id: string
  readonly title: string
  readonly engine: ReportEngine
  readonly workspace_id: string | null
  readonly powerbi_report_id: string | null
  readonly embed_url: string | null
  readonly mart: string | null
}

export interface Page {
  readonly name: string
  readonly display_name: string
}

export type { FilterValue, ReportFilter }

export const EXPORT_FORMATS = ["png", "pdf"] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

/** What an engine is asked to draw: one report, the pages in order, one Power BI filter expression (or none). */
export interface RenderRequest {
  readonly report: Report
  readonly pages: ReadonlyArray<Page>
  /** Power BI URL filter syntax, e.g. `Store/Region eq 'North' and Calendar/Year eq 2024`; undefined: unfiltered. */
  readonly filter: string | undefined
  readonly format: ExportFormat
  /** Aborted when the job's time is up (REPORTS_EXPORT_TIMEOUT_MS) or the worker stops. */
  readonly signal: AbortSignal
  /** 0–100, as far as the engine knows. */
  readonly progress: (percent: number) => void
}

export interface RenderedFile {
  readonly bytes: Uint8Array
  readonly contentType: "image/png" | "application/pdf"
}

/**
 * Why a render failed: `retryable` when trying again later may work (the service busy, a timeout,
 * the browser crashed), not when the request itself cannot be rendered (no such report in the workspace).
 */
export class RenderFailed extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    /** How long the service asked us to wait (Retry-After), when it did. */
    readonly retryAfterMs?: number
  ) {
    super(message)
    this.name = "RenderFailed"
  }
}

/** One way of turning a report page into a PNG or a PDF. */
export interface RenderEngine {
  readonly name: ReportEngine
  /** Rejects with {@link RenderFailed}. */
  readonly render: (request: RenderRequest) => Promise<RenderedFile>
  readonly close: () => Promise<void>
}
