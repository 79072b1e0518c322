import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { natsServerBinary } from "./server.ts"

const run = promisify(execFile)
const HERE = dirname(fileURLToPath(import.meta.url))
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ingest-nats-production-"))
  // A throwaway certificate: nats-server -t loads every file a tls block names.
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-keyout",
    join(dir, "key.pem"),
    "-out",
    join(dir, "cert.pem")
  ])
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** What an operator sets for the production configurations (infra/nats/production/*.conf), hashes in bcrypt's shape. */
const environment = () => {
  const hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.H/4/Km"
  return {
    ...process.env,
    NATS_SERVER_NAME: "hub1",
    NATS_STORE_DIR: join(dir, "store"),
    NATS_TLS_CERT: join(dir, "cert.pem"),
    NATS_TLS_KEY: join(dir, "key.pem"),
    NATS_TLS_CA: join(dir, "cert.pem"),
    NATS_ROUTE_1: "tls://hub1.example.com:6222",
    NATS_ROUTE_2: "tls://hub2.example.com:6222",
    NATS_ROUTE_3: "tls://hub3.example.com:6222",
    NATS_REGION: "eu",
    NATS_EDGE_PUBLISH: JSON.stringify(["ingest.*.*.*.eu", "ingest.quarantine.*.eu"]),
    NATS_HUB_1: "tls://leaf:secret@hub1.example.com:7422",
    NATS_HUB_2: "tls://leaf:secret@hub2.example.com:7422",
    NATS_HUB_3: "tls://leaf:secret@hub3.example.com:7422",
    NATS_HUB_SYS_1: "tls://leaf-sys:secret@hub1.example.com:7422",
    NATS_HUB_SYS_2: "tls://leaf-sys:secret@hub2.example.com:7422",
    NATS_HUB_SYS_3: "tls://leaf-sys:secret@hub3.example.com:7422",
    ...Object.fromEntries(
      ["LEAF", "LEAF_SYS", "ADMIN", "PROJECTOR", "REPORTS", "EDGE", "SYS"].map((user) => [`NATS_${user}_PASSWORD_HASH`, hash])
    )
  }
}

describe("the production configurations in docs/operations.md", () => {
  it.each(["hub.conf", "leaf.conf"])("%s is accepted by this machine's nats-server", async (file) => {
    const { stdout, stderr } = await run(natsServerBinary(), ["-t", "-c", resolve(HERE, "production", file)], { env: environment() })
    expect(`${stdout}${stderr}`).toContain("is valid")
  })

  it("a leaf config without its region is refused, naming the variable", async () => {
    const { NATS_REGION: _region, ...withoutRegion } = environment()
    const refused = await run(natsServerBinary(), ["-t", "-c", resolve(HERE, "production", "leaf.conf")], { env: withoutRegion }).then(
      () => "accepted",
      (error: { stderr?: string }) => error.stderr ?? ""
    )
    expect(refused).toMatch(/NATS_REGION/)
  })
})
