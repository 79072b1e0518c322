import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { projectCommand } from "../consumers/cli.ts"
import { defaultSources } from "../contracts/sources.ts"
import { alowareCall, erasureEvents, hubspotBatch, oeeEvents, postSigned, retailEvents } from "./local/samples.ts"
import { generateSecrets, startEdgeStack } from "./local/stack.ts"
import { applyStreams, DEFAULT_STREAM_SETTINGS, streamDeclarations } from "./streams.ts"

const USAGE = `usage: npm run mesh -- <command>

  up                      run the local mesh: nats-server (JetStream, websocket) and the edge Worker in workerd
      --port N            edge HTTP port (default 8787)
      --nats-port N       NATS client port (default 14222; websocket N+1, monitor N+2)
  samples                 send signed sample traffic for every source to a running local mesh
  project [name...]       run projections live (default: all) with NATS_URL, NATS_USER, NATS_PASSWORD, DATABASE_URL
  streams apply           declare the log's streams on a NATS server (idempotent)
      --url URL           nats://host:port (default $NATS_URL or nats://127.0.0.1:4222)
      --user U --password P   (default $NATS_USER / $NATS_PASSWORD)
      --duplicate-window-minutes N   (default 10)
      --replicas N        (default 1; 3 in a cluster)
`

const STATE_DIR = resolve(process.cwd(), ".mesh")
const STATE_FILE = join(STATE_DIR, "local.json")

interface LocalState {
  readonly edgeUrl: string
  readonly secrets: Record<string, string>
  readonly natsPasswords: { admin: string; edge: string; projector: string }
}

/** Secrets and passwords survive restarts of the local mesh, so its store and senders keep working. */
const loadOrCreateState = (edgeUrl: string): LocalState => {
  mkdirSync(STATE_DIR, { recursive: true })
  if (existsSync(STATE_FILE)) {
    const state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as LocalState
    return { ...state, edgeUrl }
  }
  const password = () => `p${crypto.randomUUID().replaceAll("-", "")}`
  return { edgeUrl, secrets: generateSecrets(), natsPasswords: { admin: password(), edge: password(), projector: password() } }
}

const up = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({ args: [...args], options: { port: { type: "string", default: "8787" }, "nats-port": { type: "string", default: "14222" } } })
  const port = Number(values.port)
  const natsPort = Number(values["nats-port"])
  const state = loadOrCreateState(`http://127.0.0.1:${port}`)
  const stack = await startEdgeStack({
    secrets: state.secrets,
    edgePort: port,
    verbose: true,
    nats: { port: natsPort, wsPort: natsPort + 1, monitorPort: natsPort + 2, storeDir: join(STATE_DIR, "nats"), passwords: state.natsPasswords, name: "ingest-local" }
  })
  writeFileSync(STATE_FILE, JSON.stringify({ ...state, edgeUrl: stack.edge.url }, null, 2))
  console.log(`
ingest mesh is up
  webhooks   POST ${stack.edge.url}/v1/hooks/<source>   (sources: ${Object.keys(defaultSources).join(", ")})
  health     GET  ${stack.edge.url}/healthz
  NATS       ${stack.nats.url}  (websocket ${stack.nats.wsUrl}, monitor ${stack.nats.monitorUrl}, user admin, password in ${STATE_FILE})
  secrets    ${STATE_FILE}
  try it     npm run mesh -- samples
Ctrl-C stops it; the log is kept in ${join(STATE_DIR, "nats")}.
`)
  await new Promise<void>((resolveStop) => {
    process.once("SIGINT", resolveStop)
    process.once("SIGTERM", resolveStop)
  })
  console.log("stopping...")
  await stack.dispose()
}

const samples = async () => {
  if (!existsSync(STATE_FILE)) throw new Error("no local mesh found: start it first with `npm run up`")
  const state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as LocalState
  const now = Date.now()
  const traffic: ReadonlyArray<[string, unknown]> = [
    ["hubspot", hubspotBatch(10, { firstEventId: now, occurredAt: now })],
    ["aloware", alowareCall(now % 1_000_000_000, new Date(now).toISOString())],
    ["erasure", erasureEvents(8, { firstId: now, day: new Date(now).toISOString().slice(0, 10) })],
    ["oee", oeeEvents("M-01", now)],
    ["pos", retailEvents("47", now)]
  ]
  for (const [source, payload] of traffic) {
    const response = await postSigned(state.edgeUrl, source, payload, state.secrets[source] as string)
    const answer = (await response.json()) as { accepted?: number; duplicates?: number; message?: string }
    console.log(`${source.padEnd(8)} ${response.status} ${response.status === 202 ? `accepted ${answer.accepted}, duplicates ${answer.duplicates}` : answer.message}`)
  }
}

const streamsApply = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      url: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
      user: { type: "string", default: process.env.NATS_USER ?? "admin" },
      password: { type: "string", default: process.env.NATS_PASSWORD ?? "" },
      "duplicate-window-minutes": { type: "string", default: String(DEFAULT_STREAM_SETTINGS.duplicateWindowMs / 60_000) },
      replicas: { type: "string", default: String(DEFAULT_STREAM_SETTINGS.replicas) }
    }
  })
  const nc = await connect({ servers: values.url, user: values.user, ...(values.password === "" ? {} : { pass: values.password }) })
  try {
    const changes = await applyStreams(
      await jetstreamManager(nc),
      streamDeclarations({ duplicateWindowMs: Number(values["duplicate-window-minutes"]) * 60_000, replicas: Number(values.replicas) })
    )
    for (const change of changes) console.log(`${change.name.padEnd(18)} ${change.action}`)
  } finally {
    await nc.close()
  }
}

const [command, ...rest] = process.argv.slice(2)
const run = async () => {
  if (command === "up") return up(rest)
  if (command === "samples") return samples()
  if (command === "project") return projectCommand(rest)
  if (command === "streams" && rest[0] === "apply") return streamsApply(rest.slice(1))
  console.error(USAGE)
  process.exitCode = command === undefined || command === "help" || command === "--help" ? 0 : 2
}

run().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error))
  process.exitCode = 1
})
