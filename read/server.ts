import type { HttpBindings } from "@hono/node-server"
import { type Context, Hono } from "hono"
import type postgres from "postgres"
import { grants } from "../contracts/scopes.ts"
import { listen } from "../platform/http.ts"
import { logEvent } from "../platform/logger.ts"
import { describeReadError, Forbidden, isReadError, NotFound, ReadUnavailable } from "./errors.ts"
import { exportCopy, exportEndpoints } from "./exports.ts"
import { findFeed, martFeeds, marts } from "./feeds.ts"
import { contentTypes, csvFromCopy, jsonFromCopy } from "./formats.ts"
import { DEFAULT_STREAM_LIMITS, pullStream, type StreamLimits } from "./stream.ts"
import { ALL_MARTS, authenticate, parseApiKey, presentedKey } from "./keys.ts"
import { metadataXml, ODATA_JSON, odataPage, pageQuery, pageSizeFor, parseODataOptions, serviceDocument } from "./odata.ts"
import { biRoutes } from "./bi.ts"
import { docsAsset, docsPage, openApiDocument } from "./openapi.ts"
import { API_KEY_PARAM, parseParams } from "./params.ts"
import { readerQueries } from "./queries.ts"
import type { RowScope } from "./row-scope.ts"
import type { RowQuery } from "./rows.ts"
import { statsAsset, statsPage, warehouseDay } from "./stats.ts"
import { xlsxFromCopy } from "./xlsx.ts"

export interface ReadApiOptions {
  /** A connection pool as the read-only reader role. */
  readonly sql: postgres.Sql
  /** The URL readers reach the API at, for links (`@odata.nextLink`, OpenAPI servers); the request's origin when absent. */
  readonly publicUrl?: string
  /**
   * Responses that may stream at once, each holding a pooled connection for its cursor: keep it
   * below the pool's size so key checks and small queries still get a connection. Past it,
   * requests get 503 with Retry-After (which Power BI honours) instead of waiting in the pool.
   */
  readonly maxStreams: number
  /** Key checks and health probes that may run at once, on connections of their own (default 2). */
  readonly keyCheckSlots?: number
  /** Statement timeout of an export's queries (default 60 s, READ_EXPORT_TIMEOUT_MS). */
  readonly exportTimeoutMs?: number
  /** Statement timeout of an OData page, a `$count` and the stats summaries (default 10 s, READ_PAGE_TIMEOUT_MS). */
  readonly pageTimeoutMs?: number
  /** How a streaming response is kept from holding its cursor for ever: stall, read rate and total time (defaults {@link DEFAULT_STREAM_LIMITS}). */
  readonly streamLimits?: Partial<StreamLimits>
  /** One log line per request (method, path, status, milliseconds to the headers, key id); on unless false. */
  readonly accessLog?: boolean
  readonly extensions?: ReadonlyArray<ApiExtension>
}

/**
 * More endpoints served beside the read API's, under its keys and errors and in its OpenAPI
 * document (the report export service's, say): the read side knows them only through this shape.
 */
export interface ApiExtension {
  /** OpenAPI path items and component schemas, merged into the read API's document. */
  readonly openapi: { readonly paths: Readonly<Record<string, unknown>>; readonly schemas?: Readonly<Record<string, unknown>> }
  /** Adds the routes. Under `/api/` a request is authenticated first: `allow(c, scope)` refuses a key not scoped to `scope`. */
  readonly mount: (
    app: Hono<ApiEnv>,
    helpers: { readonly allow: (c: ApiContext, scope: string) => void; readonly origin: (c: ApiContext) => string }
  ) => void
}

export const DEFAULT_EXPORT_TIMEOUT_MS = 60_000
export const DEFAULT_PAGE_TIMEOUT_MS = 10_000

type Variables = { marts: ReadonlyArray<string>; keyId: string; rows: RowScope }
type Env = { Variables: Variables; Bindings: Partial<HttpBindings> }
export type ApiEnv = Env
export type ApiContext = Context<Env>

/** Drops the client's connection (Node's response under Hono): how a limit ends a response the client has stopped reading. */
const dropConnectionOf = (c: ApiContext) => (reason: string) => c.env?.outgoing?.destroy(new Error(reason))

const today = () => new Date().toISOString().slice(0, 10)

/** HEAD asks for the headers only: answered without opening a cursor. */
const headersOnly = (c: ApiContext, headers: Record<string, string>) =>
  c.req.method === "HEAD" ? new Response(null, { headers }) : undefined

/** Refuses a key not scoped to `mart` (a mart, or an admin scope, which `*` does not cover). */
const allow = (c: ApiContext, mart: string) => {
  const granted = c.get("marts")
  if (!grants(granted, mart, ALL_MARTS)) throw new Forbidden({ mart, allowed: [...granted] })
}

/** The read API: the seeds' REST endpoints and exports, OData v4 feeds per mart, and its OpenAPI document. */
export const readApi = (options: ReadApiOptions): Hono<Env> => {
  const limits: StreamLimits = { ...DEFAULT_STREAM_LIMITS, ...options.streamLimits }
  const exportTimeout = { limitMs: options.exportTimeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS, setting: "READ_EXPORT_TIMEOUT_MS" }
  const pageTimeout = { limitMs: options.pageTimeoutMs ?? DEFAULT_PAGE_TIMEOUT_MS, setting: "READ_PAGE_TIMEOUT_MS" }
  const { stream, copy, shortQuery, countOf } = readerQueries(options.sql, {
    maxStreams: options.maxStreams,
    keyCheckSlots: options.keyCheckSlots ?? 2,
    pageTimeout
  })
  const app = new Hono<Env>()
  const origin = (c: ApiContext) => options.publicUrl?.replace(/\/$/, "") ?? new URL(c.req.url).origin

  if (options.accessLog !== false) {
    app.use(async (c, next) => {
      const started = performance.now()
      await next()
      // The path only: the query may carry the key (api_key).
      logEvent("info", "read", {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
        key: c.get("keyId") ?? null
      })
    })
  }

  app.onError((error, c) => {
    const readError = isReadError(error) ? error : new ReadUnavailable({ reason: error instanceof Error ? error.message : String(error) })
    const { status, body, headers } = describeReadError(readError)
    if (readError._tag === "ReadUnavailable") logEvent("error", "read api failure", { path: c.req.path, reason: readError.reason })
    for (const [name, value] of Object.entries(headers ?? {})) c.header(name, value)
    if (c.req.path.startsWith("/odata")) {
      c.header("OData-Version", "4.0")
      return c.json(
        { error: { code: body.error, message: body.message, ...(body.parameter === undefined ? {} : { target: body.parameter }) } },
        status
      )
    }
    return c.json(body, status)
  })
  app.notFound((c) => {
    throw new NotFound({
      message: `no endpoint ${c.req.method} ${c.req.path}; the endpoints are listed at ${origin(c)}/openapi.json and ${origin(c)}/docs`
    })
  })

  app.get("/", (c) =>
    c.json({
      name: "ingest mesh read API",
      openapi: `${origin(c)}/openapi.json`,
      docs: `${origin(c)}/docs`,
      odata: Object.fromEntries(marts.map((mart) => [mart, `${origin(c)}/odata/${mart}/`])),
      exports: exportEndpoints.map((endpoint) => `${origin(c)}${endpoint.path}`)
    })
  )
  app.get("/healthz", async (c) => {
    await shortQuery("any", (sql) => sql`SELECT 1`)
    return c.json({ status: "ok" })
  })
  const extensions = options.extensions ?? []
  const document = (c: ApiContext) =>
    openApiDocument(
      origin(c),
      extensions.map((extension) => extension.openapi)
    )
  app.get("/openapi.json", (c) => c.json(document(c)))
  app.get("/docs", (c) => c.html(docsPage(document(c))))
  app.get("/docs/assets/:file", (c) => docsAsset(c.req.param("file")))
  app.route("/bi", biRoutes(options.publicUrl))

  for (const prefix of ["/api/*", "/metrics/*", "/odata/*"]) {
    app.use(prefix, async (c, next) => {
      const presented = presentedKey(c.req.header("x-api-key"), c.req.header("authorization"), c.req.query(API_KEY_PARAM))
      // A missing or malformed key is refused before it takes a key-check slot.
      parseApiKey(presented)
      const key = await shortQuery("any", (sql) => authenticate(sql, presented))
      c.set("marts", key.marts)
      c.set("keyId", key.id)
      c.set("rows", key.rows)
      c.header("Cache-Control", "no-store")
      await next()
    })
  }

  const summary = async (c: ApiContext, day: string) => {
    allow(c, "warehouse")
    return c.json(await shortQuery("warehouse", (sql) => warehouseDay(sql, day), c.get("rows")))
  }
  app.get("/metrics/today", (c) => summary(c, today()))
  app.get("/metrics/yesterday", (c) => summary(c, new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)))
  // The stats page and its assets hold no data: served without a key (the page reads the two routes above with one).
  app.get("/stats", () => statsPage())
  app.get("/stats/assets/:file", (c) => statsAsset(c.req.param("file")))

  for (const endpoint of exportEndpoints) {
    app.get(endpoint.path, async (c) => {
      allow(c, endpoint.mart)
      const params = parseParams(endpoint.params, new URL(c.req.url).searchParams, endpoint.defaultFormat)
      const statement = exportCopy(endpoint, params)
      const columns = endpoint.columns.map(({ column }) => column)
      const file = `${endpoint.fileName}_${today()}.${params.format}`
      const headers = {
        "Content-Type": contentTypes[params.format],
        "Content-Disposition": `${params.format === "json" ? "inline" : "attachment"}; filename="${file}"`,
        "Cache-Control": "no-store"
      }
      const head = headersOnly(c, headers)
      if (head !== undefined) return head
      // The rows' bytes come from COPY: Postgres formats every field, and no row becomes an object on our side.
      const bytes = await copy(c.get("rows"), endpoint.mart, statement, exportTimeout)
      const body =
        params.format === "csv"
          ? csvFromCopy(columns, bytes.chunks, params.booleans.include_headers !== false)
          : params.format === "xlsx"
            ? xlsxFromCopy(columns, bytes.chunks, endpoint.fileName)
            : jsonFromCopy(columns, bytes.chunks)
      return new Response(pullStream(body, bytes.close, limits, dropConnectionOf(c)), { headers })
    })
  }

  for (const extension of extensions) extension.mount(app, { allow, origin })

  app.get("/odata", (c) => c.json({ value: marts.map((mart) => ({ name: mart, url: `${origin(c)}/odata/${mart}/` })) }))
  const martOf = (c: ApiContext) => {
    const mart = c.req.param("mart") as string
    if (martFeeds[mart] === undefined) throw new NotFound({ message: `no mart named ${JSON.stringify(mart)}; marts: ${marts.join(", ")}` })
    allow(c, mart)
    c.header("OData-Version", "4.0")
    return { mart, feeds: martFeeds[mart] as NonNullable<(typeof martFeeds)[string]>, root: `${origin(c)}/odata/${mart}` }
  }
  const serviceRoot = (c: ApiContext) => {
    const { feeds, root } = martOf(c)
    return c.body(JSON.stringify(serviceDocument(root, feeds)), 200, { "Content-Type": ODATA_JSON })
  }
  app.get("/odata/:mart", serviceRoot)
  app.get("/odata/:mart/", serviceRoot)
  app.get("/odata/:mart/$metadata", (c) => {
    const { mart, feeds } = martOf(c)
    return c.body(metadataXml(mart, feeds), 200, { "Content-Type": "application/xml; charset=utf-8" })
  })
  const feedOf = (c: ApiContext) => {
    const { mart, root } = martOf(c)
    const name = c.req.param("set") as string
    const feed = findFeed(mart, name)
    if (feed === undefined) throw new NotFound({ message: `no entity set ${JSON.stringify(name)} in the ${mart} mart; see ${root}/` })
    return { mart, root, feed }
  }
  app.get("/odata/:mart/:set/$count", async (c) => {
    const { mart, feed } = feedOf(c)
    const options = parseODataOptions(feed, new URL(c.req.url).searchParams)
    const { count } = pageQuery(feed, { ...options, count: true }, 1)
    return c.text(await countOf(c.get("rows"), mart, count as RowQuery))
  })
  app.get("/odata/:mart/:set", async (c) => {
    const { mart, root, feed } = feedOf(c)
    const requested = new URL(c.req.url)
    // Links point where readers reach the API (PUBLIC_URL behind a proxy), not where it listens.
    const url = new URL(`${origin(c)}${requested.pathname}${requested.search}`)
    const options = parseODataOptions(feed, url.searchParams)
    const page = pageSizeFor(c.req.header("prefer"))
    const query = pageQuery(feed, options, page.size)
    const headers: Record<string, string> = { "Content-Type": ODATA_JSON, "OData-Version": "4.0", "Cache-Control": "no-store" }
    if (page.applied) headers["Preference-Applied"] = `odata.maxpagesize=${page.size}`
    const head = headersOnly(c, headers)
    if (head !== undefined) return head
    const blame = options.after === undefined ? "$filter" : "$skiptoken"
    const total = query.count === undefined ? undefined : await countOf(c.get("rows"), mart, query.count)
    const rows = await stream(c.get("rows"), mart, query.rows, pageTimeout, blame)
    const body = odataPage({ root, feed, url, options, query, total, batches: rows.batches })
    return new Response(pullStream(body, rows.close, limits, dropConnectionOf(c)), { headers })
  })
  return app
}

/** Serves the read API on `port` (0: any free port) until `close`. */
export const serveReadApi = async (
  options: ReadApiOptions & { readonly port: number; readonly host?: string }
): Promise<{ url: string; close: () => Promise<void> }> => {
  const { url, close } = await listen(readApi(options).fetch, options.port, options.host)
  return { url, close }
}
