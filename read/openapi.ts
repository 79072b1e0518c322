import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import type { Column } from "../projections/table.ts"
import { escapeXml } from "../platform/text.ts"
import { pbidsFor } from "./bi.ts"
import { NotFound } from "./errors.ts"
import { exportEndpoints } from "./exports.ts"
import { type Feed, martFeeds, marts } from "./feeds.ts"
import { contentTypes } from "./formats.ts"
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, metadataXml, serviceDocument } from "./odata.ts"
import { API_KEY_PARAM, DATE_FORM, MAX_LIMIT, type ParamSpec } from "./params.ts"

type JsonSchema = Record<string, unknown>
type Value = string | number | boolean

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

/** Plausible values for the columns and filters the marts share, so the examples read like the data. */
const TEXT_EXAMPLES: Readonly<Record<string, string>> = {
  machine_id: "M-01",
  machine_name: "Press 1",
  machine_code: "P1",
  line_id: "L-1",
  line_name: "Pressing",
  shift_id: "S-1",
  shift_name: "Early",
  status: "submitted",
  event: "success",
  device_type: "laptop",
  initials: "JD",
  month: "2025-01",
  store_id: "47",
  store_key: "47",
  product_id: "SKU-1001",
  product_key: "SKU-1001",
  region: "Northeast",
  source: "hubspot",
  agent_id: "agent-7"
}
const INTEGER_EXAMPLES: Readonly<Record<string, number>> = { date_key: 20250115, year: 2025, month: 1, quarter: 1, day_of_week: 3 }

/** A value of `column`'s type for the documents' examples. */
export const exampleValue = (column: Column): Value => {
  switch (column.type) {
    case "integer":
    case "bigint":
      return INTEGER_EXAMPLES[column.name] ?? 42
    case "numeric":
      return 12.5
    case "boolean":
      return false
    case "date":
      return "2025-01-15"
    case "timestamptz":
      return "2025-01-15T06:15:00.000Z"
    case "text":
      return TEXT_EXAMPLES[column.name] ?? `${column.name.replaceAll("_", "-")}-1`
  }
}

/** One example row of `columns`, as the JSON export and the OData feed write it. */
export const exampleRow = (columns: ReadonlyArray<Column>): Record<string, Value> =>
  Object.fromEntries(columns.map((column) => [column.name, exampleValue(column)]))

const exampleCsv = (columns: ReadonlyArray<Column>): string =>
  `${columns.map((column) => column.name).join(",")}\r\n${columns.map((column) => String(exampleValue(column))).join(",")}\r\n`

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

/** The value a parameter's example shows. */
export const paramExample = (spec: ParamSpec): Value => {
  switch (spec.kind) {
    case "format":
      return spec.formats.includes("csv") ? "csv" : (spec.formats[0] as string)
    case "from":
      return "2025-01-15"
    case "to":
      return "2025-01-31"
    case "boolean":
      return spec.default
    case "limit":
      return 100
    case "text":
      return TEXT_EXAMPLES[spec.name] ?? `${spec.name.replaceAll("_", "-")}-1`
  }
}

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } }
})

/** The schemes a key travels in: any one of them is enough. */
export const securitySchemes = {
  ApiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key", description: "The API key, imk_<16 hex>.<43 characters>." },
  BearerAuth: {
    type: "http",
    scheme: "bearer",
    bearerFormat: "API key",
    description: "The same API key as `Authorization: Bearer imk_…` (Tableau's and most HTTP clients' token field)."
  },
  ApiKeyQuery: {
    type: "apiKey",
    in: "query",
    name: API_KEY_PARAM,
    description: 'The API key as ?api_key=…: what Power BI\'s Web API credential sends with ApiKeyName="api_key".'
  }
} as const

/** Each scheme alone satisfies an operation under a key. */
export const KEY_SECURITY: ReadonlyArray<Readonly<Record<string, ReadonlyArray<string>>>> = Object.keys(securitySchemes).map((name) => ({
  [name]: []
}))

/** The paths whose operations need a key, as the read API's middleware guards them. */
export const SECURED_PREFIXES: ReadonlyArray<string> = ["/api/", "/metrics/", "/odata/"]

const keyErrors = (mart: string) => ({
  "401": errorResponse("No API key, a malformed, unknown or revoked one (X-API-Key, Authorization: Bearer or api_key)."),
  "403": errorResponse(`The key is not scoped to the ${mart} mart.`)
})
const unavailable = errorResponse(
  "The mart is not built yet, the API is busy or the database is unavailable; retry after Retry-After seconds."
)

const daySummaryExample = (date: string) => ({
  date,
  booked_in: 5,
  erased: 4,
  qa: 3,
  engineers: [
    { initials: "JD", count: 3 },
    { initials: "AB", count: 1 }
  ],
  device_types: [
    { device_type: "laptop", count: 3 },
    { device_type: "phone", count: 1 }
  ]
})

const daySummary = (which: string, date: string) => ({
  get: {
    tags: ["warehouse"],
    summary: `${which}'s (UTC) warehouse counts and per-engineer erasures.`,
    responses: {
      "200": {
        description: "The day's summary",
        content: { "application/json": { schema: { $ref: "#/components/schemas/DaySummary" }, example: daySummaryExample(date) } }
      },
      ...keyErrors("warehouse"),
      "503": unavailable
    }
  }
})

const exportPaths = () =>
  Object.fromEntries(
    exportEndpoints.map((endpoint) => {
      const columns = endpoint.columns.map(({ column }) => column)
      return [
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
              schema: paramSchema(spec),
              example: paramExample(spec)
            })),
            responses: {
              "200": {
                description: `Rows in ${endpoint.columns.length} columns, streamed; CSV and XLSX come as ${endpoint.fileName}_<UTC date>.<format>.`,
                content: {
                  [contentTypes.json.split(";")[0] as string]: {
                    schema: { type: "array", items: rowSchema(columns) },
                    example: [exampleRow(columns)]
                  },
                  [contentTypes.csv.split(";")[0] as string]: { schema: { type: "string" }, example: exampleCsv(columns) },
                  [contentTypes.xlsx]: { schema: { type: "string", format: "binary" } }
                }
              },
              "400": errorResponse("A parameter is malformed; `parameter` names it."),
              ...keyErrors(endpoint.mart),
              "503": unavailable
            }
          }
        }
      ]
    })
  )

/** The entity set a mart's examples show: its first with a date window, else its first. */
const exampleFeed = (feeds: ReadonlyArray<Feed>): Feed => (feeds.find((feed) => feed.time !== undefined) ?? feeds[0]) as Feed

const odataOptions = (feed: Feed) => {
  const time = feed.time?.name
  const examples: Readonly<Record<string, Value | undefined>> = {
    $select: feed.columns
      .slice(0, 3)
      .map((column) => column.name)
      .join(","),
    $filter: time === undefined ? undefined : `${time} ge 2025-01-01T00:00:00Z and ${time} lt 2025-02-01T00:00:00Z`,
    $orderby: time === undefined ? feed.key.join(",") : `${time} desc`,
    $top: 100,
    $skip: 0,
    $count: "true"
  }
  const descriptions: Readonly<Record<string, string>> = {
    $select: "Properties to return, comma-separated.",
    $filter: "eq ne gt ge lt le, and/or/not, parentheses, contains/startswith/endswith; literals are typed.",
    $orderby: "property [asc|desc], comma-separated.",
    $top: "At most this many rows, across pages.",
    $skip: "Rows to skip on the first request.",
    $skiptoken: "Where the previous page ended: follow @odata.nextLink as given.",
    $count: "true adds @odata.count, the rows matching $filter."
  }
  return Object.entries(descriptions).map(([name, description]) => ({
    name,
    in: "query",
    required: false,
    description,
    schema: { type: "string" },
    ...(examples[name] === undefined ? {} : { example: examples[name] })
  }))
}

const odataPaths = (serverUrl: string, mart: string) => {
  const feeds = martFeeds[mart] ?? []
  const root = `${serverUrl}/odata/${mart}`
  const feed = exampleFeed(feeds)
  const tags = [mart, "odata"]
  const errors = { ...keyErrors(mart), "503": unavailable }
  const entitySet = {
    name: "entitySet",
    in: "path",
    required: true,
    description: `An entity set of the ${mart} mart, as the service document lists them.`,
    schema: { type: "string", enum: feeds.map((one) => one.name) },
    example: feed.name
  }
  return {
    [`/odata/${mart}/`]: {
      get: {
        tags,
        summary: `The ${mart} mart's OData v4 service document: its entity sets (what Power BI's and Excel's navigator lists).`,
        responses: {
          "200": {
            description: "The service document",
            content: { "application/json": { schema: { type: "object" }, example: serviceDocument(root, feeds) } }
          },
          ...errors
        }
      }
    },
    [`/odata/${mart}/$metadata`]: {
      get: {
        tags,
        summary: `The ${mart} mart's CSDL: an entity type per entity set, with its key and Edm types.`,
        responses: {
          "200": {
            description: "CSDL XML",
            content: { "application/xml": { schema: { type: "string" }, example: metadataXml(mart, feeds) } }
          },
          ...errors
        }
      }
    },
    [`/odata/${mart}/{entitySet}`]: {
      get: {
        tags,
        summary: `OData v4 feed of the ${mart} mart: service document at /odata/${mart}/, CSDL at /odata/${mart}/$metadata.`,
        description:
          "Supports $select, $filter (eq ne gt ge lt le, and/or/not, contains/startswith/endswith), $orderby, $top, $skip, $count. " +
          `Pages hold ${DEFAULT_PAGE_SIZE} rows (Prefer: odata.maxpagesize up to ${MAX_PAGE_SIZE}); follow @odata.nextLink.`,
        parameters: [entitySet, ...odataOptions(feed)],
        responses: {
          "200": {
            description: "A page of rows; @odata.nextLink when more follow",
            content: {
              "application/json": {
                schema: { type: "object", properties: { value: { type: "array", items: { type: "object" } } } },
                example: {
                  "@odata.context": `${root}/$metadata#${feed.name}`,
                  "@odata.count": 1,
                  value: [exampleRow(feed.columns)]
                }
              }
            }
          },
          "400": errorResponse("A query option is malformed; `target` names it."),
          ...errors
        }
      }
    },
    [`/odata/${mart}/{entitySet}/$count`]: {
      get: {
        tags,
        summary: "The number of rows of an entity set matching $filter, as plain text.",
        parameters: [entitySet, ...odataOptions(feed).filter((option) => option.name === "$filter")],
        responses: {
          "200": { description: "The count", content: { "text/plain": { schema: { type: "string" }, example: "1234" } } },
          "400": errorResponse("$filter is malformed."),
          ...errors
        }
      }
    }
  }
}

const biPaths = (serverUrl: string) => ({
  "/bi/{mart}.pbids": {
    get: {
      tags: ["bi"],
      summary: "A Power BI Desktop data source file for a mart's OData feed: open it and Power BI asks for the key (Web API credential).",
      security: [],
      parameters: [{ name: "mart", in: "path", required: true, schema: { type: "string", enum: marts }, example: marts[0] }],
      responses: {
        "200": {
          description: "The .pbids file (JSON), as an attachment",
          content: { "application/json": { schema: { type: "object" }, example: pbidsFor(serverUrl, marts[0] as string) } }
        },
        "404": errorResponse("No such mart.")
      }
    }
  },
  "/bi": {
    get: {
      tags: ["bi"],
      summary: "The BI files' addresses: a .pbids per mart, Power Query M (.pq) for incremental refresh, DAX measures (.dax).",
      security: [],
      responses: {
        "200": {
          description: "File name to address",
          content: {
            "application/json": {
              schema: { type: "object" },
              example: { files: { [`${marts[0]}.pbids`]: `${serverUrl}/bi/${marts[0]}.pbids`, "oee.pq": `${serverUrl}/bi/oee.pq` } }
            }
          }
        }
      }
    }
  }
})

/** Every operation under {@link SECURED_PREFIXES} that states no `security` of its own gets {@link KEY_SECURITY}. */
export const withKeySecurity = (paths: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(paths).map(([path, item]) => [
      path,
      SECURED_PREFIXES.some((prefix) => path.startsWith(prefix))
        ? Object.fromEntries(
            Object.entries(item as Record<string, unknown>).map(([method, operation]) => [
              method,
              typeof operation === "object" && operation !== null && !("security" in operation)
                ? { ...operation, security: KEY_SECURITY }
                : operation
            ])
          )
        : item
    ])
  )

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
      "Authenticate with an API key in the X-API-Key header, as Authorization: Bearer <key>, or in the api_key query parameter " +
      '(Power BI\'s Web API credential with ApiKeyName="api_key"). ' +
      "Date windows are half-open: a YYYY-MM-DD bound covers that whole UTC day, an instant bound is exact, the end is exclusive. " +
      "Power BI data source files (.pbids), Power Query M and DAX: /bi."
  },
  servers: [{ url: serverUrl }],
  paths: withKeySecurity({
    ...exportPaths(),
    "/metrics/today": daySummary("Today", "2025-01-15"),
    "/metrics/yesterday": daySummary("Yesterday", "2025-01-14"),
    ...Object.assign({}, ...marts.map((mart) => odataPaths(serverUrl, mart))),
    ...biPaths(serverUrl),
    ...Object.assign({}, ...extensions.map((extension) => extension.paths))
  }),
  components: {
    securitySchemes,
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
          engineers: { type: "array", items: { type: "object", properties: { initials: { type: "string" }, count: { type: "integer" } } } },
          device_types: {
            type: "array",
            description: "Successful erasures by device type, busiest first",
            items: { type: "object", properties: { device_type: { type: "string" }, count: { type: "integer" } } }
          }
        }
      },
      ...Object.assign({}, ...extensions.map((extension) => extension.schemas ?? {}))
    } as Record<string, unknown>
  }
})

/** The viewer's files the read API serves under `/docs/assets/`, from the viewer's npm package: no CDN, works offline. */
const VIEWER_ASSETS: Readonly<Record<string, { readonly specifier: string; readonly type: string }>> = {
  "api-reference.js": { specifier: "@scalar/api-reference/browser/standalone.js", type: "text/javascript; charset=utf-8" }
}

const resolveModule = createRequire(import.meta.url).resolve
const assetCache = new Map<string, Promise<Uint8Array>>()

/** A viewer file for `GET /docs/assets/<file>`, read once from node_modules; an unknown name is a 404. */
export const docsAsset = async (file: string): Promise<Response> => {
  const asset = VIEWER_ASSETS[file]
  if (asset === undefined)
    throw new NotFound({ message: `no docs asset ${JSON.stringify(file)}; the assets are ${Object.keys(VIEWER_ASSETS).join(", ")}` })
  let bytes = assetCache.get(file)
  if (bytes === undefined) {
    bytes = readFile(resolveModule(asset.specifier)).then((buffer) => new Uint8Array(buffer))
    assetCache.set(file, bytes)
    bytes.catch(() => assetCache.delete(file))
  }
  return new Response(await bytes, { headers: { "Content-Type": asset.type, "Cache-Control": "public, max-age=3600" } })
}

const html = (value: unknown) => escapeXml(String(value))

/** A JSON value safe inside an inline `<script>`: nothing in it can close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replaceAll("<", "\\u003c")

/**
 * The viewer's settings: the document from /openapi.json, try-it against the API itself (no
 * proxy), the key asked for in the X-API-Key header first, and nothing fetched from the internet
 * (no web fonts, no telemetry, no assistant).
 */
export const viewerConfiguration = (title: string) => ({
  url: "openapi.json",
  metaData: { title },
  withDefaultFonts: false,
  telemetry: false,
  showDeveloperTools: "never",
  agent: { disabled: true },
  documentDownloadType: "json",
  hideClientButton: false,
  persistAuth: false,
  authentication: { preferredSecurityScheme: "ApiKeyHeader" }
})

/**
 * `/docs`: the OpenAPI document in the API reference viewer served from `/docs/assets/`, with
 * try-it. Addresses are relative, so the page works behind a path prefix; without JavaScript it
 * lists the operations.
 */
export const docsPage = (document: ReturnType<typeof openApiDocument>): string => {
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item as Record<string, { summary?: string }>).map(
      ([method, operation]) => `<li><code>${html(method.toUpperCase())} ${html(path)}</code> ${html(operation.summary ?? "")}</li>`
    )
  )
  return [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${html(document.info.title)}</title></head><body>`,
    `<noscript><h1>${html(document.info.title)}</h1><p>${html(document.info.description)}</p>`,
    `<p>Machine-readable: <a href="openapi.json">openapi.json</a>.</p><ul>${operations.join("")}</ul></noscript>`,
    `<div id="docs-viewer"></div>`,
    `<script src="docs/assets/api-reference.js"></script>`,
    `<script>Scalar.createApiReference("#docs-viewer", ${scriptJson(viewerConfiguration(document.info.title))})</script>`,
    `</body></html>`
  ].join("")
}
