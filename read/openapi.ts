import type { Column } from "../projections/table.ts"
import { exportEndpoints } from "./exports.ts"
import { marts } from "./feeds.ts"
import { contentTypes } from "./formats.ts"
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./odata.ts"
import { API_KEY_PARAM, DATE_FORM, MAX_LIMIT, type ParamSpec } from "./params.ts"
import { escapeXml } from "../platform/text.ts"

type JsonSchema = Record<string, unknown>

/** A column's JSON Schema, as the JSON and OData formats write it. */
const columnSchema = (column: Column): JsonSchema => {
  const base: JsonSchema =
    column.type === "integer" || column.type === "bigint"
      ? { type: "integer" }
      : column.type === "numeric"
        ? { type: "number" }
        : column.type === "boolean"
          ? { type: "boolean" }
          : column.type === "date"
            ? { type: "string", format: "date" }
            : column.type === "timestamptz"
              ? { type: "string", format: "date-time", description: "UTC, milliseconds" }
              : { type: "string" }
  return column.nullable === true ? { ...base, type: [base.type, "null"] } : base
}

export const rowSchema = (columns: ReadonlyArray<Column>): JsonSchema => ({
  type: "object",
  properties: Object.fromEntries(columns.map((column) => [column.name, columnSchema(column)])),
  required: columns.map((column) => column.name)
})

const paramSchema = (spec: ParamSpec): JsonSchema => {
  switch (spec.kind) {
    case "format":
      return { type: "string", enum: spec.formats }
    case "from":
    case "to":
      return { type: "string", description: DATE_FORM, examples: ["2025-01-15", "2025-01-15T00:00:00Z"] }
    case "boolean":
      return { type: "boolean", default: spec.default }
    case "limit":
      return { type: "integer", minimum: 1, maximum: MAX_LIMIT }
    case "text":
      return { type: "string", minLength: 1, maxLength: 200 }
  }
}

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } }
})

/** The OpenAPI 3.1 document of the read API, generated from the same declarations the handlers use. */
export const openApiDocument = (
  serverUrl: string,
  extensions: ReadonlyArray<{
    readonly paths: Readonly<Record<string, unknown>>
    readonly schemas?: Readonly<Record<string, unknown>>
  }> = []
) => ({
  openapi: "3.1.0",
  info: {
    title: "ingest mesh read API",
    version: "1",
    description:
      "Read the projected marts: the seeds' REST endpoints and exports (CSV, JSON, XLSX, streamed) and an OData v4 feed per mart. " +
      'Authenticate with an API key in the X-API-Key header or the api_key query parameter (Power BI\'s Web API credential with ApiKeyName="api_key"). ' +
      "Date windows are half-open: a YYYY-MM-DD bound covers that whole UTC day, an instant bound is exact, the end is exclusive."
  },
  servers: [{ url: serverUrl }],
  security: [{ ApiKeyHeader: [] }, { ApiKeyQuery: [] }],
  paths: {
    ...Object.fromEntries(
      exportEndpoints.map((endpoint) => [
        endpoint.path,
        {
          get: {
            tags: [endpoint.mart],
            summary: endpoint.summary,
            parameters: endpoint.params.map((spec) => ({
              name: spec.name,
              in: "query",
              required: false,
              description: spec.description,
              schema: paramSchema(spec)
            })),
            responses: {
              "200": {
                description: `Rows in ${endpoint.columns.length} columns, streamed; CSV and XLSX come as ${endpoint.fileName}_<UTC date>.<format>.`,
                content: {
                  [contentTypes.json.split(";")[0] as string]: {
                    schema: { type: "array", items: rowSchema(endpoint.columns.map(({ column }) => column)) }
                  },
                  [contentTypes.csv.split(";")[0] as string]: { schema: { type: "string" } },
                  [contentTypes.xlsx]: { schema: { type: "string", format: "binary" } }
                }
              },
              "400": errorResponse("A parameter is malformed; `parameter` names it."),
              "401": errorResponse("No API key, an unknown one, or a revoked one."),
              "403": errorResponse(`The key is not scoped to the ${endpoint.mart} mart.`),
              "503": errorResponse("The mart is not built yet or the database is unavailable; retry after Retry-After seconds.")
            }
          }
        }
      ])
    ),
    "/metrics/today": {
      get: {
        tags: ["warehouse"],
        summary: "Today's (UTC) warehouse counts and per-engineer erasures.",
        responses: {
          "200": {
            description: "The day's summary",
            content: { "application/json": { schema: { $ref: "#/components/schemas/DaySummary" } } }
          }
        }
      }
    },
    "/metrics/yesterday": {
      get: {
        tags: ["warehouse"],
        summary: "Yesterday's (UTC) warehouse counts and per-engineer erasures.",
        responses: {
          "200": {
            description: "The day's summary",
            content: { "application/json": { schema: { $ref: "#/components/schemas/DaySummary" } } }
          }
        }
      }
    },
    ...Object.fromEntries(
      marts.map((mart) => [
        `/odata/${mart}/{entitySet}`,
        {
          get: {
            tags: [mart, "odata"],
            summary: `OData v4 feed of the ${mart} mart: service document at /odata/${mart}/, CSDL at /odata/${mart}/$metadata.`,
            description:
              "Supports $select, $filter (eq ne gt ge lt le, and/or/not, contains/startswith/endswith), $orderby, $top, $skip, $count. " +
              `Pages hold ${DEFAULT_PAGE_SIZE} rows (Prefer: odata.maxpagesize up to ${MAX_PAGE_SIZE}); follow @odata.nextLink.`,
            parameters: [
              { name: "entitySet", in: "path", required: true, schema: { type: "string" } },
              ...["$select", "$filter", "$orderby", "$top", "$skip", "$skiptoken", "$count"].map((name) => ({
                name,
                in: "query",
                required: false,
                schema: { type: "string" }
              }))
            ],
            responses: { "200": { description: "A page of rows" }, "400": errorResponse("A query option is malformed; `target` names it.") }
          }
        }
      ])
    ),
    ...Object.assign({}, ...extensions.map((extension) => extension.paths))
  } as Record<string, unknown>,
  components: {
    securitySchemes: {
      ApiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key" },
      ApiKeyQuery: { type: "apiKey", in: "query", name: API_KEY_PARAM }
    },
    schemas: {
      Error: {
        type: "object",
        properties: { error: { type: "string" }, message: { type: "string" }, parameter: { type: "string" } },
        required: ["error", "message"]
      },
      DaySummary: {
        type: "object",
        properties: {
          date: { type: "string", format: "date" },
          booked_in: { type: "integer" },
          erased: { type: "integer" },
          qa: { type: "integer" },
          engineers: { type: "array", items: { type: "object", properties: { initials: { type: "string" }, count: { type: "integer" } } } }
        }
      },
      ...Object.assign({}, ...extensions.map((extension) => extension.schemas ?? {}))
    } as Record<string, unknown>
  }
})

const html = (value: unknown) => escapeXml(String(value))

/** A self-contained page rendering the OpenAPI document: every endpoint, its parameters and columns. */
export const docsPage = (document: ReturnType<typeof openApiDocument>): string => {
  type Operation = {
    summary: string
    description?: string
    parameters?: ReadonlyArray<{ name: string; description?: string; schema: JsonSchema }>
    responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>
  }
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item as Record<string, Operation>).map(([method, operation]) => [path, method, operation] as const)
  )
  const sections = operations.map(([path, method, get]) => {
    const params = (get.parameters ?? [])
      .map(
        (p) =>
          `<tr><td><code>${html(p.name)}</code></td><td>${html(JSON.stringify(p.schema))}</td><td>${html(p.description ?? "")}</td></tr>`
      )
      .join("")
    const rows = get.responses["200"]?.content?.["application/json"]?.schema as
      { items?: { properties?: Record<string, JsonSchema> } } | undefined
    const columns = Object.entries(rows?.items?.properties ?? {}).map(
      ([name, schema]) =>
        `<code>${html(name)}</code> <small>${html(JSON.stringify(schema.type))}${schema.format === undefined ? "" : ` ${html(schema.format)}`}</small>`
    )
    return `<section><h2><code>${html(method.toUpperCase())} ${html(path)}</code></h2><p>${html(get.summary)}</p>${get.description === undefined ? "" : `<p>${html(get.description)}</p>`}${
      params === "" ? "" : `<table><tr><th>parameter</th><th>schema</th><th>meaning</th></tr>${params}</table>`
    }${columns.length === 0 ? "" : `<p>Columns: ${columns.join(", ")}</p>`}</section>`
  })
  const style = [
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.4}",
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}",
    "code{background:#f4f4f4;padding:0 .2rem}section{border-top:1px solid #ddd;margin-top:1.5rem}"
  ].join("")
  return [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${html(document.info.title)}</title><style>${style}</style></head>`,
    `<body><h1>${html(document.info.title)}</h1><p>${html(document.info.description)}</p>`,
    `<p>Machine-readable: <a href="${html(document.servers[0]?.url)}/openapi.json">openapi.json</a>.</p>`,
    ...sections,
    `</body></html>`
  ].join("")
}
