import type { AddressInfo } from "node:net"
import { type HttpBindings, serve } from "@hono/node-server"
import { type Context, Hono } from "hono"
import type postgres from "postgres"
import { logEvent } from "../platform/logger.ts"
import { admission } from "./admission.ts"
import { BadParameter, describeReadError, Forbidden, isReadError, MartNotReady, NotFound, QueryTimedOut, type ReadError, ReadUnavailable } from "./errors.ts"
import { exportEndpoints, exportQuery } from "./exports.ts"
import { findFeed, martFeeds, marts } from "./feeds.ts"
import { contentTypes, csvChunks, DEFAULT_STREAM_LIMITS, jsonChunks, pullStream, type StreamLimits } from "./formats.ts"
import { ALL_MARTS, authenticate, parseApiKey } from "./keys.ts"
import { metadataXml, nextLink, ODATA_JSON, pageQuery, pageSizeFor, parseODataOptions, positionToken, serviceDocument } from "./odata.ts"
import { openApiDocument, docsPage } from "./openapi.ts"
import { API_KEY_PARAM, parseParams } from "./params.ts"
import { type Cells, openRows, type RowQuery } from "./rows.ts"
import { xlsxChunks } from "./xlsx.ts"

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
}

export const DEFAULT_EXPORT_TIMEOUT_MS = 60_000
export const DEFAULT_PAGE_TIMEOUT_MS = 10_000
/** Statement timeout of a key check or a health probe: an indexed lookup, never long. */
const KEY_CHECK_TIMEOUT_MS = 5000

type Variables = { marts: ReadonlyArray<string>; keyId: string }
type Env = { Variables: Variables; Bindings: Partial<HttpBindings> }
type ApiContext = Context<Env>

/** Drops the client's connection (Node's response under Hono): how a limit ends a response the client has stopped reading. */
const dropConnectionOf = (c: ApiContext) => (reason: string) => c.env?.outgoing?.destroy(new Error(reason))

const today = () => new Date().toISOString().slice(0, 10)

/**
 * Postgres failures as reader-facing errors: a missing `mart` view means the mart is not built
 * yet; a value Postgres could not take (class 22) is the fault of `parameter`.
 */
const fromDatabase = (error: unknown, mart: string, parameter: string, timeout?: { readonly limitMs: number; readonly setting: string }): ReadError => {
  if (isReadError(error)) return error
  const code = (error as { code?: string }).code ?? ""
  if (code === "57014" && timeout !== undefined) return new QueryTimedOut(timeout)
  if (code === "42P01" || code === "3F000") return new MartNotReady({ mart })
  if (code.startsWith("22")) return new BadParameter({ parameter, message: `a value does not fit its column: ${(error as Error).message}` })
  return new ReadUnavailable({ reason: error instanceof Error ? error.message : String(error) })
}

const run = async <A>(mart: string, action: () => Promise<A>, parameter = "query", timeout?: { readonly limitMs: number; readonly setting: string }): Promise<A> => {
  try {
    return await action()
  } catch (error) {
    throw fromDatabase(error, mart, parameter, timeout)
  }
}

/** HEAD asks for the headers only: answered without opening a cursor. */
const headersOnly = (c: ApiContext, headers: Record<string, string>) => (c.req.method === "HEAD" ? new Response(null, { headers }) : undefined)

const allow = (c: ApiContext, mart: string) => {
  const granted = c.get("marts")
  if (!granted.includes(ALL_MARTS) && !granted.includes(mart)) throw new Forbidden({ mart, allowed: [...granted] })
}

/** The read API: the seeds' REST endpoints and exports, OData v4 feeds per mart, and its OpenAPI document. */
export const readApi = (options: ReadApiOptions): Hono<Env> => {
  const limits: StreamLimits = { ...DEFAULT_STREAM_LIMITS, ...options.streamLimits }
  const slots = admission(options.sql, { long: options.maxStreams, short: options.keyCheckSlots ?? 2 })
  const exportTimeout = { limitMs: options.exportTimeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS, setting: "READ_EXPORT_TIMEOUT_MS" }
  const pageTimeout = { limitMs: options.pageTimeoutMs ?? DEFAULT_PAGE_TIMEOUT_MS, setting: "READ_PAGE_TIMEOUT_MS" }
  /** A cursor for `query` on a long slot of its own, each fetch under `timeout`, held until the stream closes. */
  const stream = async (mart: string, query: RowQuery, timeout: typeof exportTimeout, parameter?: string) => {
    // No statement_timeout: Postgres would count the time a slow client takes to read ({@link openRows}).
    const slot = await slots.reserve("long", 0)
    try {
      const rows = await run(mart, () => openRows(slot.sql, query, timeout), parameter, timeout)
      return { batches: rows.batches, close: () => rows.close().finally(slot.release) }
    } catch (error) {
      await slot.release()
      throw error
    }
  }
  /** A long query that is not streamed (a count), on a slot under the page timeout. */
  const longQuery = <A>(mart: string, query: (sql: postgres.Sql) => Promise<A>, parameter?: string) =>
    run(mart, () => slots.run("long", pageTimeout.limitMs, (slot) => query(slot.sql)), parameter, pageTimeout)
  /** A key check, health probe or stats summary (indexed lookups), on a slot of their own. */
  const shortQuery = <A>(mart: string, query: (sql: postgres.Sql) => Promise<A>) =>
    run(mart, () => slots.run("short", KEY_CHECK_TIMEOUT_MS, (slot) => query(slot.sql)), "query", { limitMs: KEY_CHECK_TIMEOUT_MS, setting: "the key check timeout" })
  /** The row count of an OData query (its `$filter` the only input that can fail it). */
  const countOf = (mart: string, count: RowQuery) => longQuery(mart, async (sql) => String((await sql.unsafe(count.text, [...count.params]))[0]?.count ?? 0), "$filter")
  const app = new Hono<Env>()
  const origin = (c: ApiContext) => options.publicUrl?.replace(/\/$/, "") ?? new URL(c.req.url).origin

  if (options.accessLog !== false) {
    app.use(async (c, next) => {
      const started = performance.now()
      await next()
      // The path only: the query may carry the key (api_key).
      logEvent("info", "read", { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started), key: c.get("keyId") ?? null })
    })
  }

  app.onError((error, c) => {
    const readError = isReadError(error) ? error : new ReadUnavailable({ reason: error instanceof Error ? error.message : String(error) })
    const { status, body, headers } = describeReadError(readError)
    if (readError._tag === "ReadUnavailable") logEvent("error", "read api failure", { path: c.req.path, reason: readError.reason })
    for (const [name, value] of Object.entries(headers ?? {})) c.header(name, value)
    if (c.req.path.startsWith("/odata")) {
      c.header("OData-Version", "4.0")
      return c.json({ error: { code: body.error, message: body.message, ...(body.parameter === undefined ? {} : { target: body.parameter }) } }, status)
    }
    return c.json(body, status)
  })
  app.notFound((c) => {
    throw new NotFound({ message: `no endpoint ${c.req.method} ${c.req.path}; the endpoints are listed at ${origin(c)}/openapi.json and ${origin(c)}/docs` })
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
  app.get("/openapi.json", (c) => c.json(openApiDocument(origin(c))))
  app.get("/docs", (c) => c.html(docsPage(openApiDocument(origin(c)))))

  for (const prefix of ["/api/*", "/metrics/*", "/odata/*"]) {
    app.use(prefix, async (c, next) => {
      const presented = c.req.header("x-api-key") ?? c.req.query(API_KEY_PARAM)
      // A missing or malformed key is refused before it takes a key-check slot.
      parseApiKey(presented)
      const key = await shortQuery("any", (sql) => authenticate(sql, presented))
      c.set("marts", key.marts)
      c.set("keyId", key.id)
      c.header("Cache-Control", "no-store")
      await next()
    })
  }

  const summary = async (c: ApiContext, day: string) => {
    allow(c, "warehouse")
    return shortQuery("warehouse", async (sql) => {
      const [stats] = await sql`SELECT booked_in, erased, qa FROM mart_warehouse.daily_stats WHERE date = ${day}::date`
      const engineers = await sql`SELECT initials, count FROM mart_warehouse.engineer_stats WHERE date = ${day}::date ORDER BY count DESC, initials`
      return c.json({
        date: day,
        booked_in: stats?.booked_in ?? 0,
        erased: stats?.erased ?? 0,
        qa: stats?.qa ?? 0,
        engineers: engineers.map((row) => ({ initials: row.initials as string, count: row.count as number }))
      })
    })
  }
  app.get("/metrics/today", (c) => summary(c, today()))
  app.get("/metrics/yesterday", (c) => summary(c, new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)))

  for (const endpoint of exportEndpoints) {
    app.get(endpoint.path, async (c) => {
      allow(c, endpoint.mart)
      const params = parseParams(endpoint.params, new URL(c.req.url).searchParams, endpoint.defaultFormat)
      const query = exportQuery(endpoint, params)
      const file = `${endpoint.fileName}_${today()}.${params.format}`
      const headers = {
        "Content-Type": contentTypes[params.format],
        "Content-Disposition": `${params.format === "json" ? "inline" : "attachment"}; filename="${file}"`,
        "Cache-Control": "no-store"
      }
      const head = headersOnly(c, headers)
      if (head !== undefined) return head
      const rows = await stream(endpoint.mart, query, exportTimeout)
      const body =
        params.format === "csv"
          ? csvChunks(query.columns, rows.batches, params.booleans.include_headers !== false, params.booleans.csv_raw === true)
          : params.format === "xlsx"
            ? xlsxChunks(query.columns, rows.batches, endpoint.fileName)
            : jsonChunks(query.columns, rows.batches)
      return new Response(pullStream(body, rows.close, limits, dropConnectionOf(c)), { headers })
    })
  }

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
    return c.text(await countOf(mart, count as RowQuery))
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
    const total = query.count === undefined ? undefined : await countOf(mart, query.count)
    const rows = await stream(mart, query.rows, pageTimeout, blame)
    const selected = options.select.length === feed.columns.length ? "" : `(${options.select.map((column) => column.name).join(",")})`
    let last: Cells | undefined
    let more = false
    const pageRows = async function* () {
      let emitted = 0
      for await (const batch of rows.batches) {
        const room = query.pageRows - emitted
        const taken = batch.length > room ? batch.slice(0, room) : batch
        if (taken.length > 0) {
          emitted += taken.length
          last = taken[taken.length - 1]
          yield taken
        }
        if (batch.length > room) {
          more = true
          break
        }
      }
    }
    const topLeft = options.top === undefined ? Number.MAX_SAFE_INTEGER : options.top - query.pageRows
    const open = `{"@odata.context":${JSON.stringify(`${root}/$metadata#${feed.name}${selected}`)},${total === undefined ? "" : `"@odata.count":${total},`}"value":[`
    const close = () =>
      more && topLeft > 0 && last !== undefined
        ? `],"@odata.nextLink":${JSON.stringify(nextLink(url, options, query.pageRows, positionToken(options, feed, last)))}}`
        : "]}"
    return new Response(pullStream(jsonChunks(options.select, pageRows(), open, close), rows.close, limits, dropConnectionOf(c)), { headers })
  })
  return app
}

/** Serves the read API on `port` (0: any free port) until `close`. */
export const serveReadApi = async (options: ReadApiOptions & { readonly port: number; readonly host?: string }): Promise<{ url: string; close: () => Promise<void> }> => {
  const app = readApi(options)
  const server = await new Promise<ReturnType<typeof serve>>((resolveListening) => {
    const listening = serve({ fetch: app.fetch, port: options.port, hostname: options.host ?? "127.0.0.1" }, () => resolveListening(listening))
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    close: () =>
      new Promise<void>((resolveClosed) => {
        server.close(() => resolveClosed())
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
      })
  }
}
