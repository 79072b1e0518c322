import postgres from "postgres"
import { readerConnection } from "../../projections/read/cli.ts"
import { dropReaderLogin, ensureReaderLogin } from "../../projections/read/keys.ts"
import { type ReadApiOptions, serveReadApi } from "../../projections/read/server.ts"

export interface ReadApiHarness {
  readonly url: string
  /** The API's pool, as its own read-only login: for more servers on the same login, or reads as the API sees them. */
  readonly sql: postgres.Sql
  /** The login's name, to find its sessions in `pg_stat_activity`. */
  readonly login: string
  readonly close: () => Promise<void>
}

/**
 * The read API on a free port over the database at `databaseUrl`, connected as a fresh login in
 * the reader group (a pool of 4) that `owner` creates, and drops again on `close`: roles outlive
 * the database on a shared DATABASE_URL server.
 */
export const startReadApi = async (owner: postgres.Sql, databaseUrl: string, options: Omit<ReadApiOptions, "sql">): Promise<ReadApiHarness> => {
  const login = `ingest_api_${Math.random().toString(36).slice(2, 10)}`
  const sql = postgres(await ensureReaderLogin(owner, databaseUrl, login, "reader-secret"), { ...readerConnection, max: 4 })
  const api = await serveReadApi({ ...options, sql, port: 0 })
  return {
    url: api.url,
    sql,
    login,
    close: async () => {
      await api.close()
      await sql.end({ timeout: 5 })
      await dropReaderLogin(owner, login)
    }
  }
}
