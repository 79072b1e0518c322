import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import type { NatsServer } from "../nats/server.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

export interface ProjectorProcess {
  readonly child: ChildProcess
  /** Resolves with the first log line `predicate` accepts; rejects if the process exits first. */
  readonly waitFor: (predicate: (line: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>>
  readonly exited: Promise<number | null>
  /** The last 4 KB the process wrote to stderr, for failure messages. */
  readonly stderr: () => string
}

/** `mesh project` as its own OS process, so tests can SIGKILL it like a crashed host; no metrics listener unless `metricsPort` is given. */
export const spawnProjector = (options: {
  nats: NatsServer
  databaseUrl: string
  names: ReadonlyArray<string>
  batchSize?: number
  metricsPort?: number
}): ProjectorProcess => {
  const args = [
    "project",
    "--batch-size",
    String(options.batchSize ?? 500),
    "--metrics-port",
    String(options.metricsPort ?? 0),
    ...options.names
  ]
  return spawnMesh(args, {
    NATS_URL: options.nats.url,
    NATS_USER: options.nats.projector.user,
    NATS_PASSWORD: options.nats.projector.password,
    DATABASE_URL: options.databaseUrl
  })
}

/** `npm run mesh -- <args>` as its own OS process with `env` added, its JSON log lines watched (see {@link ProjectorProcess}). */
export const spawnMesh = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>): ProjectorProcess => {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "infra", "cli.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<Record<string, unknown>> = []
  const listeners = new Set<(line: Record<string, unknown>) => void>()
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    let line: Record<string, unknown>
    try {
      line = JSON.parse(text) as Record<string, unknown>
    } catch {
      return
    }
    lines.push(line)
    for (const listener of listeners) listener(line)
  })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)))
  return {
    child,
    exited,
    stderr: () => stderr,
    waitFor: (predicate) =>
      new Promise((resolveLine, reject) => {
        const found = lines.find(predicate)
        if (found !== undefined) return resolveLine(found)
        const listener = (line: Record<string, unknown>) => {
          if (!predicate(line)) return
          listeners.delete(listener)
          resolveLine(line)
        }
        listeners.add(listener)
        void exited.then((code) => {
          if (listeners.delete(listener))
            reject(new Error(`mesh ${args[0] ?? ""} exited with ${code} before the expected log line: ${stderr}`))
        })
      })
  }
}
