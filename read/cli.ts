import { type ParseArgsConfig, parseArgs } from "node:util"
import postgres from "postgres"
import { ADMIN_SCOPES } from "../contracts/scopes.ts"
import { logEvent } from "../platform/logger.ts"
import { databaseUrl, optionalSetting, requiredSetting, type SettingSource, wholeNumberSetting } from "../platform/settings.ts"
import { marts } from "./feeds.ts"
import { createApiKey, listApiKeys, revokeApiKey } from "./keys.ts"
import { ensureReaderLogin } from "./roles.ts"
import { describeRowScope, parseRowScope, readsScopedRows, scopedMarts } from "./row-scope.ts"
import { DEFAULT_STREAM_LIMITS } from "./stream.ts"
import { type ApiExtension, DEFAULT_EXPORT_TIMEOUT_MS, DEFAULT_PAGE_TIMEOUT_MS, serveReadApi } from "./server.ts"

/** The `options` of a `parseArgs` call: a command's option table. */
type OptionTable = NonNullable<ParseArgsConfig["options"]>

/** Connections of the read API's pool (READ_POOL_SIZE). */
export const READ_POOL_SIZE = 10

/** Responses that may stream at once from a pool of `poolSize`: two connections stay free for key checks and small queries. */
export const streamsFor = (poolSize: number): number => Math.max(1, poolSize - 2)

/**
 * postgres.js options of every reader connection: UTC for date formatting and bounds, read-only
 * whatever the role, and no JIT: on the 432,000-row data mart export it spent 0.66 s compiling
 * for a query that runs in 1.7 s without it.
 */
export const readerConnection = {
  connection: { TimeZone: "UTC", default_transaction_read_only: true, jit: false },
  onnotice: () => {}
} as const

/** What `mesh keys create` parses; `mesh keys --help` lists each (infra/cli-help.int.test.ts). */
export const KEYS_CREATE_OPTIONS = {
  name: { type: "string" },
  marts: { type: "string" },
  stores: { type: "string" },
  regions: { type: "string" },
  "all-rows": { type: "boolean" }
} as const satisfies OptionTable

/** `mesh keys create|list|revoke`. */
export const keysCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const [action, ...rest] = args
  // The marts' database as its owner: keys are written there.
  const sql = postgres(databaseUrl(source), { max: 1, onnotice: () => {} })
  try {
    if (action === "create") {
      const { values } = parseArgs({ args: rest, options: KEYS_CREATE_OPTIONS })
      if (values.name === undefined || values.marts === undefined)
        throw new Error(
          `usage: keys create --name <who it is for> --marts <${[...marts, ...ADMIN_SCOPES].join(",")}|*> [--stores 47,48] [--regions Northeast] [--all-rows]`
        )
      const { key, apiKey } = await createApiKey(
        sql,
        values.name,
        values.marts.split(",").map((mart) => mart.trim()),
        // Besides the marts: the scopes that may change the report registry and open the operator's console.
        [...marts, ...ADMIN_SCOPES],
        parseRowScope({ stores: values.stores, regions: values.regions, allRows: values["all-rows"] })
      )
      console.log(
        `created key ${apiKey.id} "${apiKey.name}" for marts ${apiKey.marts.join(", ")}${readsScopedRows(apiKey.marts) ? `, ${describeRowScope(apiKey.rows)} of ${scopedMarts.join(", ")}` : ""}\n\n  ${key}\n\nThis is the only time the key is shown: only its hash is stored.`
      )
      return
    }
    if (action === "list") {
      for (const key of await listApiKeys(sql)) {
        console.log(
          `${key.id}  ${key.revokedAt === null ? "active " : "revoked"}  ${key.marts.join(",").padEnd(24)}  ${(readsScopedRows(key.marts) ? describeRowScope(key.rows) : "-").padEnd(24)}  ${key.createdAt}  ${key.name}`
        )
      }
      return
    }
    if (action === "revoke") {
      const ids = rest.filter((arg) => arg !== "")
      if (ids.length === 0) throw new Error("usage: keys revoke <id>...")
      for (const id of ids) {
        if (!(await revokeApiKey(sql, id))) throw new Error(`no key with id ${JSON.stringify(id)}; see keys list`)
        console.log(`revoked ${id}`)
      }
      return
    }
    throw new Error("usage: keys create --name <name> --marts <marts> | keys list | keys revoke <id>...")
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** What `mesh reader-login` parses besides the login. */
export const READER_LOGIN_OPTIONS = {
  "marts-only": { type: "boolean", default: false },
  stores: { type: "string" },
  regions: { type: "string" },
  "all-rows": { type: "boolean" }
} as const satisfies OptionTable

/**
 * `mesh reader-login <login> [--marts-only --stores … | --regions … | --all-rows]`: the
 * `ingest_reader` group and a login in it, with READER_PASSWORD; prints its URL. Without
 * `--marts-only` it is the read API's login (it reads the key table, and each request's rows are
 * its key's); with it, a BI user's (Power BI's PostgreSQL connector, DirectQuery), who sees the
 * store-scoped marts' rows it is given here — and none unless given some.
 */
export const readerLoginCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: READER_LOGIN_OPTIONS })
  const [login] = positionals
  const usage =
    "usage: READER_PASSWORD=… npm run mesh -- reader-login <login> [--marts-only (--stores 47,48 | --regions Northeast | --all-rows)]"
  if (login === undefined) throw new Error(usage)
  const rows = parseRowScope({ stores: values.stores, regions: values.regions, allRows: values["all-rows"] })
  // A row scope is a BI user's: it implies --marts-only.
  const biUser = values["marts-only"] || rows !== undefined
  if (biUser && rows === undefined)
    throw new Error(
      `a BI login sees the ${scopedMarts.join(", ")} mart's rows by store: give --stores 47,48, --regions Northeast, or --all-rows for every row`
    )
  const password = requiredSetting(source, { env: "READER_PASSWORD" }, usage)
  const url = databaseUrl(source)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const readerUrl = await ensureReaderLogin(sql, url, login, password, rows === undefined ? { apiKeys: true } : { apiKeys: false, rows })
    if (rows !== undefined) console.log(`${login} sees ${describeRowScope(rows)} of ${scopedMarts.join(", ")}`)
    console.log(`READ_DATABASE_URL=${readerUrl}`)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** What `mesh serve-api` parses. */
export const SERVE_API_OPTIONS = {
  port: { type: "string" },
  host: { type: "string", default: "0.0.0.0" }
} as const satisfies OptionTable

/** `mesh serve-api`: the read API alone, connected as READ_DATABASE_URL (the read-only role). */
export const serveApiCommand = async (
  settings: SettingSource,
  args: ReadonlyArray<string>,
  extensions: ReadonlyArray<ApiExtension> = []
): Promise<void> => {
  const { values } = parseArgs({ args: [...args], options: SERVE_API_OPTIONS })
  const source: SettingSource = { env: settings.env, flags: values }
  const url = requiredSetting(source, { env: "READ_DATABASE_URL" }, "set it to a role in the ingest_reader group (see docs/read-api.md)")
  const setting = (name: string, fallback: number, minimum = 1) => wholeNumberSetting(source, { env: name }, fallback, minimum)
  const poolSize = setting("READ_POOL_SIZE", READ_POOL_SIZE, 3)
  const publicUrl = optionalSetting(source, { env: "PUBLIC_URL" })
  const sql = postgres(url, { ...readerConnection, max: poolSize })
  const api = await serveReadApi({
    sql,
    port: wholeNumberSetting(source, { env: "PORT", flag: "port" }, 8788, 0),
    host: values.host,
    maxStreams: streamsFor(poolSize),
    exportTimeoutMs: setting("READ_EXPORT_TIMEOUT_MS", DEFAULT_EXPORT_TIMEOUT_MS),
    pageTimeoutMs: setting("READ_PAGE_TIMEOUT_MS", DEFAULT_PAGE_TIMEOUT_MS),
    streamLimits: {
      minBytesPerSecond: setting("READ_MIN_BYTES_PER_SECOND", DEFAULT_STREAM_LIMITS.minBytesPerSecond),
      maxMs: setting("READ_MAX_RESPONSE_SECONDS", DEFAULT_STREAM_LIMITS.maxMs / 1000) * 1000
    },
    ...(publicUrl === undefined ? {} : { publicUrl }),
    extensions
  })
  logEvent("info", "read api listening", { url: api.url })
  await new Promise<void>((resolveStop) => {
    process.once("SIGINT", () => resolveStop())
    process.once("SIGTERM", () => resolveStop())
  })
  await api.close()
  await sql.end({ timeout: 5 })
}
