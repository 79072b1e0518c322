import { type PowerBiSettings, powerBiTokens } from "../../powerbi/auth.ts"
import { powerBiClient } from "../../powerbi/client.ts"
import { exportReportToFile } from "../../powerbi/export.ts"
import { type RenderEngine, RenderFailed } from "../model.ts"

/**
 * Power BI's own Export To File (`ExportTo` → poll → file), for reports in a workspace on a
 * Premium, Embedded or Fabric capacity: the service draws the pages with the one report-level
 * filter, and the mesh authenticates as its service principal through MSAL.
 */
export const powerBiEngine = (settings: PowerBiSettings, options: { readonly pollMs?: number } = {}): RenderEngine => {
  const client = powerBiClient(settings.apiBase, powerBiTokens(settings))
  return {
    name: "powerbi",
    render: async (request) => {
      const { report } = request
      if (report.workspace_id === null || report.powerbi_report_id === null)
        throw new RenderFailed(
          `report ${report.report_id} has no workspace_id and powerbi_report_id: register them to export it through Power BI`,
          false
        )
      try {
        const bytes = await exportReportToFile(client, {
          groupId: report.workspace_id,
          reportId: report.powerbi_report_id,
          format: request.format === "png" ? "PNG" : "PDF",
          pageNames: request.pages.map((page) => page.name),
          ...(request.filter === undefined ? {} : { filter: request.filter }),
          signal: request.signal,
          onProgress: request.progress,
          ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs })
        })
        return { bytes, contentType: request.format === "png" ? "image/png" : "application/pdf" }
      } catch (error) {
        if (error instanceof RenderFailed) throw error
        const failure = error as { readonly retryable?: boolean; readonly retryAfterMs?: number; readonly message?: string }
        throw new RenderFailed(
          `Power BI's Export To File failed: ${failure.message ?? String(error)}`,
          failure.retryable ?? true,
          failure.retryAfterMs
        )
      }
    },
    close: async () => {}
  }
}
