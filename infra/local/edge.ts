import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

/** `compatibility_date` of wrangler.toml, so local runs behave as the deployed Worker. */
export const compatibilityDate = (): string => {
  const match = /^compatibility_date\s*=\s*"([0-9-]+)"/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))
  if (match?.[1] === undefined) throw new Error("wrangler.toml has no compatibility_date")
  return match[1]
}

let bundled: Promise<string> | undefined

/** Bundles the Worker exactly as `wrangler deploy` does, once per process. */
export const bundleEdge = (): Promise<string> => {
  bundled ??= (async () => {
    const outdir = join(ROOT, ".build", `edge-${process.pid}`)
    await promisify(execFile)(join(ROOT, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" }
    })
    return join(outdir, "worker.js")
  })()
  return bundled
}

export interface EdgeOptions {
  readonly natsWsUrl: string
  readonly natsPassword: string
  /** Secrets per source, as in the `WEBHOOK_SECRETS` setting. */
  readonly secrets: Readonly<Record<string, ReadonlyArray<string>>>
  /** Further settings (`MAX_BODY_BYTES`, `SOURCES`, ...), as strings. */
  readonly settings?: Readonly<Record<string, string>>
  readonly host?: string
  /** 0 picks a free port. */
  readonly port?: number
  readonly verbose?: boolean
  /**
   * Opens workerd's V8 inspector (the DevTools protocol) on this port, to profile the Worker and its
   * Durable Objects from Chrome DevTools; `EDGE_INSPECTOR_PORT` sets it for a harness that does not
   * pass it (`EDGE_INSPECTOR_PORT=9229 npm run bench:edge`).
   */
  readonly inspectorPort?: number
}

export interface Edge {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string
  readonly dispose: () => Promise<void>
}

/** Runs the edge Worker and its Durable Object in workerd (Miniflare) on a real HTTP port. */
export const startEdge = async (options: EdgeOptions): Promise<Edge> => {
  const scriptPath = await bundleEdge()
  // Loaded here, not at the top: processes that import the harness without starting an edge (the
  // read API, the consumers) then run without miniflare, a development dependency, and its memory.
  const { Log, LogLevel, Miniflare } = await import("miniflare")
  const inspectorPort =
    options.inspectorPort ?? (process.env.EDGE_INSPECTOR_PORT === undefined ? undefined : Number(process.env.EDGE_INSPECTOR_PORT))
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    compatibilityDate: compatibilityDate(),
    host: options.host ?? "127.0.0.1",
    // Through Miniflare's entry worker, which re-creates each request and response in JavaScript (a
    // fifth of workerd's CPU per webhook). Its direct sockets would skip that, but then a body over the
    // limit was now and then answered with a reset instead of the 413 (edge.fuzz.test.ts, 1 run in 3).
    port: options.port ?? 0,
    log: new Log(options.verbose === true ? LogLevel.INFO : LogLevel.WARN),
    cf: false,
    ...(inspectorPort === undefined ? {} : { inspectorPort }),
    durableObjects: { LOG_PUBLISHER: "LogPublisher" },
    bindings: {
      NATS_WS_URL: options.natsWsUrl,
      NATS_USER: "edge",
      NATS_PASSWORD: options.natsPassword,
      WEBHOOK_SECRETS: JSON.stringify(options.secrets),
      ...options.settings
    }
  })
  const url = await mf.ready
  return { url: url.origin, dispose: () => mf.dispose() }
}
