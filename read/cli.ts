import { parseArgs } from "node:util"
import postgres from "postgres"
import { REPORTS_ADMIN_SCOPE } from "../contracts/reports.ts"
import { logEvent } from "../platform/logger.ts"
import { databaseUrl, optionalSetting, requiredSetting, type SettingSource, wholeNumberSetting } from "../platform/settings.ts"
import { marts } from "./feeds.ts"
import { createApiKey, listApiKeys, revokeApiKey } from "./keys.ts"
import { ensureReaderLogin } from "./roles.ts"
import { DEFAULT_STREAM_LIMITS } from "./stream.ts"
import { type ApiExtension, DEFAULT_EXPORT_TIMEOUT_MS, DEFAULT_PAGE_TIMEOUT_MS, serveReadApi } from "./server.ts"

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

/** `mesh keys create|list|revoke`. */
export const keysCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const [action, ...rest] = args
  // The marts' database as its owner: keys are written there.
  const sql = postgres(databaseUrl(source), { max: 1, onnotice: () => {} })
  try {
    if (action === "create") {
      const { values } = parseArgs({ args: rest, options: { name: { type: "string" }, marts: { type: "string" } } })
      if (values.name === undefined || values.marts === undefined)
        throw new Error(`usage: keys create --name <who it is for> --marts <${[...marts, REPORTS_ADMIN_SCOPE].join(",")}|*>`)
      const { key, apiKey } = await createApiKey(
        sql,
        values.name,
        values.marts.split(",").map((mart) => mart.trim()),
        // Besides the marts: the scope that may change the report registry.
        [...marts, REPORTS_ADMIN_SCOPE]
      )
      console.log(
        `created key ${apiKey.id} "${apiKey.name}" for marts ${apiKey.marts.join(", ")}\n\n  ${key}\n\nThis is the only time the key is shown: only its hash is stored.`
      )
      return
    }
    if (action === "list") {
      for (const key of await listApiKeys(sql)) {
        console.log(
          `${key.id}  ${key.revokedAt === null ? "active " : "revoked"}  ${key.marts.join(",").padEnd(24)}  ${key.createdAt}  ${key.name}`
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

/**
 * `mesh reader-login <login> [--marts-only]`: the `ingest_reader` group and a login in it, with
 * READER_PASSWORD; prints its URL. `--marts-only` for a BI user (the key table stays out of reach).
 */
export const readerLoginCommand = async (source: SettingSource, args: ReadonlyArray<string>): Promise<void> => {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { "marts-only": { type: "boolean", default: false } }
  })
  const [login] = positionals
  const usage = "usage: READER_PASSWORD=… npm run mesh -- reader-login <login> [--marts-only]"
  if (login === undefined) throw new Error(usage)
  const password = requiredSetting(source, { env: "READER_PASSWORD" }, usage)
  const url = databaseUrl(source)
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const readerUrl = await ensureReaderLogin(sql, url, login, password, { apiKeys: !values["marts-only"] })
    console.log(`READ_DATABASE_URL=${readerUrl}`)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** `mesh serve-api`: the read API alone, connected as READ_DATABASE_URL (the read-only role). */
export const serveApiCommand = async (
  settings: SettingSource,
  args: ReadonlyArray<string>,
  extensions: ReadonlyArray<ApiExtension> = []
): Promise<void> => {
  const { values } = parseArgs({ args: [...args], options: { port: { type: "string" }, host: { type: "string", default: "0.0.0.0" } } })
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
