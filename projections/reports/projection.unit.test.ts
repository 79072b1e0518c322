import { describe, expect, it } from "vitest"
import type { LogEvent } from "../projection.ts"
import { reportsProjection } from "./projection.ts"

const event = (type: string, data: unknown, id = "reg_1"): LogEvent => ({
  seq: 1,
  subject: `ingest.reports.registry.${type.replace(".", "_")}`,
  source: "registry",
  type,
  dedupeKey: `registry:${id}`,
  occurredAt: "2026-12-01T10:00:00.000Z",
  receivedAt: "2026-12-01T10:00:00.000Z",
  schema: "registry/v1",
  payload: { id, type, timestamp: "2026-12-01T10:00:00.000Z", data }
})

describe("the report registry's projection", () => {
  it("upserts a registration with every field, absent ones null", () => {
    expect(
      reportsProjection.project(
        event("report.registered", { report_id: "sales", title: "Sales", engine: "embed", embed_url: "https://x/e" })
      )
    ).toEqual({
      _tag: "Rows",
      rows: {
        report_registrations: [
          {
            report_id: "sales",
            title: "Sales",
            engine: "embed",
            workspace_id: null,
            powerbi_report_id: null,
            embed_url: "https://x/e",
            mart: null,
            registered_at: "2026-12-01T10:00:00.000Z"
          }
        ]
      }
    })
  })

  it("keeps a page list whole under its event, in order", () => {
    const outcome = reportsProjection.project(
      event(
        "report.pages_set",
        {
          report_id: "sales",
          pages: [
            { name: "P1", display_name: "One" },
            { name: "P2", display_name: "Two" }
          ]
        },
        "reg_7"
      )
    )
    expect(outcome).toEqual({
      _tag: "Rows",
      rows: {
        report_page_sets: [{ report_id: "sales", set_id: "registry:reg_7", set_at: "2026-12-01T10:00:00.000Z" }],
        report_page_history: [
          { set_id: "registry:reg_7", position: 0, report_id: "sales", name: "P1", display_name: "One" },
          { set_id: "registry:reg_7", position: 1, report_id: "sales", name: "P2", display_name: "Two" }
        ]
      }
    })
  })

  it("keeps a filter sheet whole, values and defaults as JSON", () => {
    const outcome = reportsProjection.project(
      event(
        "report.filters_imported",
        {
          report_id: "sales",
          file_name: "filters.xlsx",
          filters: [{ label: "Year", column: "Calendar/Year", allowed_values: [2023, 2024], default: 2024 }]
        },
        "reg_9"
      )
    )
    expect(outcome).toMatchObject({
      rows: {
        report_filter_sets: [{ report_id: "sales", set_id: "registry:reg_9", file_name: "filters.xlsx" }],
        report_filter_history: [
          { position: 0, filter_label: "Year", column_name: "Calendar/Year", allowed_values: "[2023,2024]", default_value: "2024" }
        ]
      }
    })
  })

  it("keeps a sheet for several reports as one set each, from one event", () => {
    const outcome = reportsProjection.project(
      event(
        "report.filter_sheet_imported",
        {
          file_name: "filters.xlsx (sheet filters)",
          reports: [
            { report_id: "sales", filters: [{ label: "Year", column: "Calendar/Year", allowed_values: [2024], default: null }] },
            { report_id: "oee", filters: [{ label: "Line", column: "Machine/Line", allowed_values: ["L1", "L2"], default: "L1" }] }
          ]
        },
        "reg_11"
      )
    )
    expect(outcome).toMatchObject({
      rows: {
        report_filter_sets: [
          { report_id: "sales", set_id: "registry:reg_11:sales", file_name: "filters.xlsx (sheet filters)" },
          { report_id: "oee", set_id: "registry:reg_11:oee" }
        ],
        report_filter_history: [
          { set_id: "registry:reg_11:sales", position: 0, report_id: "sales", filter_label: "Year", default_value: "null" },
          {
            set_id: "registry:reg_11:oee",
            position: 0,
            report_id: "oee",
            filter_label: "Line",
            allowed_values: '["L1","L2"]',
            default_value: '"L1"'
          }
        ]
      }
    })
  })

  it("sends a change the contract refuses to the dead letters, naming the field", () => {
    const outcome = reportsProjection.project(event("report.registered", { report_id: "bad id!", title: "x", engine: "embed" }))
    expect(outcome).toMatchObject({ _tag: "Poison", reason: expect.stringMatching(/report_id/) })
  })
})
