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
import { localSources } from "./cli.ts"
import { erasureEvents, hubspotBatch, postSigned } from "./local/samples.ts"
import { connectAdmin, generateSecret, startEdgeStack } from "./local/stack.ts"
import { changeLocalSecrets, writeLocalState } from "./local/state.ts"
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

describe("a local edge with SOURCES and two secrets per source, as `npm run up -- --rotate-secrets` starts it", () => {
  const SOURCES = JSON.stringify({ "ci-builds": { contract: "warehouse", scheme: "hub-signature-256" } })
  const sources = localSources({ SOURCES })
  const changes = {
    sources: [...sources.keys()],
    generate: (name: string) => generateSecret(sources.get(name)?.scheme ?? "hubspot")
  }
  const first = changeLocalSecrets({ secrets: {} }, changes)
  const rotated = changeLocalSecrets(first, { ...changes, rotate: true })

  it("keeps the replaced secret as the previous one on a rotation, and forgets it on retiring", () => {
    expect(sources.get("ci-builds")).toMatchObject({ scheme: "hub-signature-256", contract: "warehouse" })
    for (const name of ["ci-builds", "hubspot", "erasure"]) {
      expect(rotated.secrets[name]).not.toBe(first.secrets[name])
      expect(rotated.previousSecrets?.[name]).toEqual([first.secrets[name]])
    }
    const retired = changeLocalSecrets(rotated, { ...changes, retirePrevious: true })
    expect(retired).toEqual({ secrets: rotated.secrets, previousSecrets: {} })
    expect(() => changeLocalSecrets(rotated, { ...changes, rotate: true, retirePrevious: true })).toThrow(/give one of them/)
  })

  it("accepts a request signed with the current or the previous secret of a declared and of a default source, and no other", async () => {
    const stack = await startEdgeStack({
      secrets: rotated.secrets,
      previousSecrets: rotated.previousSecrets ?? {},
      settings: { SOURCES }
    })
    try {
      let id = Date.now()
      const post = (source: string, secret: string) => {
        id += 100
        const scheme = sources.get(source)?.scheme
        const payload =
          source === "hubspot" ? hubspotBatch(2, { firstEventId: id, occurredAt: Date.now() }) : erasureEvents(2, { firstId: id })
        return postSigned(stack.edge.url, source, payload, secret, scheme === undefined ? {} : { scheme }).then(async (response) => ({
          status: response.status,
          body: await response.text()
        }))
      }
      for (const source of ["ci-builds", "hubspot", "erasure"]) {
        const current = await post(source, rotated.secrets[source] as string)
        expect(current.status, `${source}, current secret: ${current.body}`).toBe(202)
        const previous = await post(source, rotated.previousSecrets?.[source]?.[0] as string)
        expect(previous.status, `${source}, previous secret: ${previous.body}`).toBe(202)
        const other = await post(source, changes.generate(source))
        expect(other.status, `${source}, another secret: ${other.body}`).toBe(401)
      }
    } finally {
      await stack.dispose()
    }
  })
})
