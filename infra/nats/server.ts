import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort } from "../ports.ts"
import { serverSupports } from "./features.ts"
import { stopChild, stopLeftover, stopWithParent, waitForOutput } from "../processes.ts"

/** The project's nats-server configuration; every setting comes from the environment. */
export const NATS_CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), "nats.conf")

/** The version a nats-server binary reports, e.g. `2.9.10`. */
export const natsServerVersion = (binary: string): string => {
  const output = execFileSync(binary, ["--version"], { encoding: "utf8" })
  const match = /v?(\d+\.\d+\.\d+)/.exec(output)
  if (match?.[1] === undefined) throw new Error(`${binary} --version printed no version: ${output.trim()}`)
  return match[1]
}

/** The project's configuration for a server of `version`: lines marked for newer servers turned on where it has them. */
export const renderNatsConfig = (template: string, version: string): string =>
  serverSupports(version, "syncIntervalAlways") ? template.replace(/^(\s*)# (sync_interval: always)\s*$/m, "$1$2") : template

export interface NatsCredentials {
  readonly user: string
  readonly password: string
}

export interface NatsServer {
  /** `nats://` URL for Node clients. */
  readonly url: string
  /** `ws://` URL of the websocket listener, for the edge. */
  readonly wsUrl: string
  readonly monitorUrl: string
  readonly storeDir: string
  /** The server's version, e.g. `2.9.10`: what {@link serverSupports} is asked about. */
  readonly version: string
  readonly admin: NatsCredentials
  readonly edge: NatsCredentials
  readonly projector: NatsCredentials
  /** The report export service's user: registry appends and export jobs only. */
  readonly reports: NatsCredentials
  /** Stops the server (SIGTERM) and waits for it to exit; the store is kept. */
  readonly stop: () => Promise<void>
  /** Starts it again on the same ports and store. */
  readonly start: () => Promise<void>
  /** Stops it and deletes the store when the harness created it. */
  readonly dispose: () => Promise<void>
  /** Hangs the server (SIGSTOP) with its connections open, or lets it go on (SIGCONT): see {@link NatsProcess.freeze}. */
  readonly freeze: (frozen: boolean) => void
}

export interface StartNatsOptions {
  readonly host?: string
  readonly port?: number
  readonly wsPort?: number
  readonly monitorPort?: number
  /** Defaults to a fresh temporary directory, removed by `dispose`. */
  readonly storeDir?: string
  readonly passwords?: Partial<Record<"admin" | "edge" | "projector" | "reports", string>>
  readonly name?: string
}

/** The nats-server binary on this machine, or a clear error that says how to install it. */
export const natsServerBinary = (): string => {
  for (const candidate of [process.env.NATS_SERVER_BIN, "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (candidate !== undefined && candidate !== "" && existsSync(candidate)) return candidate
  }
  try {
    return execFileSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).trim()
  } catch {
    throw new Error(
      "nats-server is not installed: run `bash infra/scripts/install-deps.sh` (Debian: apt-get install nats-server) or set NATS_SERVER_BIN"
    )
  }
}

/** One nats-server process run from a configuration file, which can be stopped, killed and started again as the same server. */
export interface NatsProcess {
  /** Spawns it and resolves once it logs "Server is ready"; rejects with its output if it exits first. */
  readonly start: () => Promise<void>
  /** SIGTERM, and resolves once it has exited (at once when it is not running). */
  readonly stop: () => Promise<void>
  /** SIGKILL: a crash, with no chance to flush or say goodbye to its cluster. Resolves once it has exited. */
  readonly kill: () => Promise<void>
  readonly running: () => boolean
  /**
   * SIGSTOP (`true`) or SIGCONT (`false`): a server that hangs with its connections open — what a
   * publish to a stream that lost its quorum, or a black-holed network, looks like to a client:
   * no error, only no answer.
   */
  readonly freeze: (frozen: boolean) => void
}

/**
 * `nats-server -c config` with `env`, as a {@link NatsProcess}. `pidFile` records the running pid
 * (for {@link stopLeftover}); `logFile` receives everything it prints (appended, kept across restarts).
 */
export const natsProcess = (
  binary: string,
  config: string,
  env: NodeJS.ProcessEnv,
  options: { readonly pidFile?: string; readonly logFile?: string } = {}
): NatsProcess => {
  let child: ChildProcess | undefined
  const end = (signal: NodeJS.Signals) => {
    const proc = child
    child = undefined
    // A frozen server (see freeze) would take a SIGTERM only once let go.
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill("SIGCONT")
    return stopChild(proc, signal)
  }
  return {
    start: async () => {
      if (child !== undefined) return
      const proc = spawn(binary, ["-c", config], { env, stdio: ["ignore", "pipe", "pipe"] })
      child = proc
      if (options.pidFile !== undefined && proc.pid !== undefined) writeFileSync(options.pidFile, String(proc.pid))
      stopWithParent(proc)
      const log = options.logFile === undefined ? undefined : createWriteStream(options.logFile, { flags: "a" })
      if (log !== undefined) {
        // Output can still arrive after the exit that ends the log file (the pipes drain after it).
        const append = (chunk: Buffer) => {
          if (!log.writableEnded) log.write(chunk)
        }
        proc.stdout?.on("data", append)
        proc.stderr?.on("data", append)
      }
      // A process that died on its own (a port taken, a bad config) is not running.
      proc.once("exit", () => {
        log?.end()
        if (child === proc) child = undefined
      })
      await waitForOutput(proc, "Server is ready", "nats-server")
    },
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    running: () => child !== undefined,
    freeze: (frozen) => {
      child?.kill(frozen ? "SIGSTOP" : "SIGCONT")
    }
  }
}

/** A random password. nats-server parses an environment value as a config token: start with a letter, stay alphanumeric. */
export const randomNatsPassword = (): string => `p${randomBytes(16).toString("hex")}`

/** Starts the project's nats-server on free loopback ports and resolves once it is ready. */
export const startNatsServer = async (options: StartNatsOptions = {}): Promise<NatsServer> => {
  const host = options.host ?? "127.0.0.1"
  const port = options.port ?? (await freePort(host))
  const wsPort = options.wsPort ?? (await freePort(host))
  const monitorPort = options.monitorPort ?? (await freePort(host))
  const ownsStore = options.storeDir === undefined
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "ingest-nats-"))
  mkdirSync(storeDir, { recursive: true })
  const admin = { user: "admin", password: options.passwords?.admin ?? randomNatsPassword() }
  const edge = { user: "edge", password: options.passwords?.edge ?? randomNatsPassword() }
  const projector = { user: "projector", password: options.passwords?.projector ?? randomNatsPassword() }
  const reports = { user: "reports", password: options.passwords?.reports ?? randomNatsPassword() }
  const env = {
    ...process.env,
    NATS_HOST: host,
    NATS_PORT: String(port),
    NATS_WS_PORT: String(wsPort),
    NATS_MONITOR_PORT: String(monitorPort),
    NATS_WS_NO_TLS: "true",
    NATS_SERVER_NAME: options.name ?? `ingest-${port}`,
    NATS_STORE_DIR: storeDir,
    NATS_ADMIN_PASSWORD: admin.password,
    NATS_EDGE_PASSWORD: edge.password,
    NATS_PROJECTOR_PASSWORD: projector.password,
    NATS_REPORTS_PASSWORD: reports.password
  }
  const binary = natsServerBinary()
  const version = natsServerVersion(binary)
  const config = join(storeDir, "nats-server.conf")
  writeFileSync(config, renderNatsConfig(readFileSync(NATS_CONFIG, "utf8"), version))
  // A persistent store (the local mesh's) remembers its server, so one left by a mesh that was killed is stopped first.
  const pidFile = ownsStore ? undefined : join(storeDir, "nats-server.pid")
  const { start, stop, freeze } = natsProcess(binary, config, env, pidFile === undefined ? {} : { pidFile })

  if (pidFile !== undefined) await stopLeftover(pidFile, "nats-server")
  await start()
  return {
    url: `nats://${host}:${port}`,
    wsUrl: `ws://${host}:${wsPort}`,
    monitorUrl: `http://${host}:${monitorPort}`,
    storeDir,
    version,
    admin,
    edge,
    projector,
    reports,
    stop,
    start,
    freeze,
    dispose: async () => {
      await stop()
      if (ownsStore) rmSync(storeDir, { recursive: true, force: true })
    }
  }
}
