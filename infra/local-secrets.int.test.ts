import { execFile } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { jetstreamManager } from "@nats-io/jetstream"
import { Registry } from "prom-client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { serveMetrics } from "../consumers/metrics.ts"
import { connectAdmin } from "./local/stack.ts"
import { writeLocalState } from "./local/state.ts"
import { type NatsServer, startNatsServer } from "./nats/server.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
let folder: string
let nats: NatsServer

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), "ingest-secrets-"))
  nats = await startNatsServer()
})

afterAll(async () => {
  rmSync(folder, { recursive: true, force: true })
  await nats?.dispose()
})

describe("the local mesh's secrets", () => {
  it("are written readable by their owner only, also over a file an older version left readable by all", () => {
    const file = join(folder, ".mesh", "local.json")
    writeLocalState(
      { edgeUrl: "http://127.0.0.1:8787", secrets: { hubspot: "s" }, natsPasswords: { admin: "a", edge: "e", projector: "p" } },
      file
    )
    expect(statSync(file).mode & 0o777).toBe(0o600)
    chmodSync(file, 0o644)
    writeFileSync(file, "{}")
    writeLocalState({ edgeUrl: "http://127.0.0.1:8787", secrets: {}, natsPasswords: { admin: "a", edge: "e", projector: "p" } }, file)
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })
})

describe("the projection metrics listener", () => {
  it("listens on loopback unless told otherwise", async () => {
    const server = await serveMetrics(new Registry(), 0)
    try {
      expect((server.address() as AddressInfo).address).toBe("127.0.0.1")
    } finally {
      server.close()
    }
  })
})

describe("`mesh streams apply`", () => {
  const apply = (args: ReadonlyArray<string>, env: Record<string, string>) =>
    promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "infra", "cli.ts"), "streams", "apply", ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env }
    }).then(
      ({ stdout }) => ({ code: 0, stdout, stderr: "" }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr })
    )

  it("refuses a password on the command line, where shell history and ps would show it, and changes nothing", async () => {
    const refused = await apply(["--url", nats.url, "--user", "admin", "--password", nats.admin.password], {})
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/takes the password from NATS_PASSWORD, not the command line/)
    const admin = await connectAdmin(nats)
    try {
      expect(await (await jetstreamManager(admin)).streams.names().next()).toEqual([])
    } finally {
      await admin.close()
    }
  })

  it("declares the streams with the password from NATS_PASSWORD", async () => {
    const applied = await apply(["--url", nats.url, "--user", "admin"], { NATS_PASSWORD: nats.admin.password })
    expect(applied.code, applied.stderr).toBe(0)
    expect(applied.stdout).toMatch(/INGEST_CRM\s+created/)
    expect(applied.stdout).toMatch(/QUARANTINE\s+created/)
  })
})
