import { connect } from "node:net"
import postgres from "postgres"
import { readerConnection } from "../../read/cli.ts"
import { dropReaderLogin, ensureReaderLogin } from "../../read/roles.ts"
import { type ReadApiOptions, serveReadApi } from "../../read/server.ts"

export interface ReadApiHarness {
  readonly url: string
  /** The API's pool, as its own read-only login: for more servers on the same login, or reads as the API sees them. */
  readonly sql: postgres.Sql
  /** The login's name, to find its sessions in `pg_stat_activity`. */
  readonly login: string
  /** Resolves once none of the login's sessions is in a query: every cursor it opened is closed. A leaked one never is. */
  readonly cursorsClosed: () => Promise<void>
  readonly close: () => Promise<void>
}

/**
 * The read API on a free port over the database at `databaseUrl`, connected as a fresh login in
 * the reader group (a pool of 4) that `owner` creates, and drops again on `close`: roles outlive
 * the database on a shared DATABASE_URL server.
 */
export const startReadApi = async (
  owner: postgres.Sql,
  databaseUrl: string,
  options: Omit<ReadApiOptions, "sql">
): Promise<ReadApiHarness> => {
  const login = `ingest_api_${Math.random().toString(36).slice(2, 10)}`
  const sql = postgres(await ensureReaderLogin(owner, databaseUrl, login, "reader-secret"), { ...readerConnection, max: 4 })
  const api = await serveReadApi({ ...options, sql, port: 0 })
  return {
    url: api.url,
    sql,
    login,
    cursorsClosed: async () => {
      while (
        (
          (await owner`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = ${login} AND state <> 'idle'`) as unknown as [
            { n: number }
          ]
        )[0].n > 0
      );
    },
    close: async () => {
      await api.close()
      await sql.end({ timeout: 5 })
      await dropReaderLogin(owner, login)
    }
  }
}

/**
 * GETs `url` over a plain socket and reads the answer at about `bytesPerSecond` (the socket paused
 * between chunks, so TCP's window closes as a slow client's does) until `hurry`, then at full speed.
 * `done` resolves once the server's end of the connection has been read: whether the chunked body
 * was complete, and how many bytes came.
 */
export const readSlowly = (url: string, headers: Readonly<Record<string, string>>, bytesPerSecond: number) => {
  const target = new URL(url)
  const socket = connect(Number(target.port), target.hostname)
  let bytes = 0
  let tail = ""
  let slow = true
  let paused: NodeJS.Timeout | undefined
  const done = new Promise<{ readonly complete: boolean; readonly bytes: number }>((resolveRead, reject) => {
    socket.once("error", reject)
    socket.once("close", () => resolveRead({ complete: tail === "0\r\n\r\n", bytes }))
  })
  socket.write(
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n${Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("")}Connection: close\r\n\r\n`
  )
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length
    tail = (tail + chunk.toString("latin1")).slice(-5)
    if (!slow) return
    socket.pause()
    paused = setTimeout(() => socket.resume(), (chunk.length / bytesPerSecond) * 1000)
  })
  return {
    done,
    hurry: () => {
      slow = false
      clearTimeout(paused)
      socket.resume()
    }
  }
}
