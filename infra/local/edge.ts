import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import type { EdgeHealth } from "../status.ts"

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
  /**
   * Keeps the Durable Objects' storage (the spools' SQLite files and their alarms) in this directory
   * rather than in memory, so it outlives {@link Edge.restart} as it outlives a deploy.
   */
  readonly persistDir?: string
  /**
   * The `request.cf` every request carries (e.g. `{ colo: "SIN" }`), so the Worker's region routing
   * (`REGION_ROUTES`) sees a data centre as on Cloudflare; none by default. A request's own
   * `MF-CF-Blob` header (JSON) replaces it for that request.
   */
  readonly cf?: Readonly<Record<string, unknown>>
}

export interface Edge {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string
  /** Where the Durable Objects' storage is kept, when `persistDir` was given. */
  readonly persistDir: string | undefined
  /** Stops workerd, runs `whileStopped` (e.g. to take something from the stored state) and starts it again on the same port and storage. */
  readonly restart: (whileStopped?: () => Promise<void> | void) => Promise<void>
  /** Fires the Worker's `scheduled` handler (its cron trigger) as Cloudflare would, and resolves once it returned. */
  readonly triggerScheduled: (cron?: string) => Promise<void>
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
  const host = options.host ?? "127.0.0.1"
  const start = (port: number) =>
    new Miniflare({
      modules: true,
      scriptPath,
      compatibilityDate: compatibilityDate(),
      host,
      // Through Miniflare's entry worker, which re-creates each request and response in JavaScript (a
      // fifth of workerd's CPU per webhook). Its direct sockets would skip that, but then a body over the
      // limit was now and then answered with a reset instead of the 413 (edge.fuzz.test.ts, 1 run in 3).
      port,
      log: new Log(options.verbose === true ? LogLevel.INFO : LogLevel.WARN),
      cf: options.cf === undefined ? false : { ...options.cf },
      ...(inspectorPort === undefined ? {} : { inspectorPort }),
      // SQLite-backed as wrangler.toml's `new_sqlite_classes` declares (programmatic Miniflare does not read it): the spool needs `ctx.storage.sql`.
      durableObjects: { LOG_PUBLISHER: { className: "LogPublisher", useSQLite: true } },
      ...(options.persistDir === undefined ? {} : { durableObjectsPersist: options.persistDir }),
      // `/cdn-cgi/handler/scheduled` fires the cron trigger, as `wrangler dev --test-scheduled` does: local only.
      unsafeTriggerHandlers: true,
      bindings: {
        NATS_WS_URL: options.natsWsUrl,
        NATS_USER: "edge",
        NATS_PASSWORD: options.natsPassword,
        WEBHOOK_SECRETS: JSON.stringify(options.secrets),
        ...options.settings
      }
    })
  let mf = start(options.port ?? 0)
  const url = await mf.ready
  return {
    url: url.origin,
    persistDir: options.persistDir,
    restart: async (whileStopped) => {
      await mf.dispose()
      await whileStopped?.()
      mf = start(Number(url.port))
      await mf.ready
    },
    triggerScheduled: async (cron = "* * * * *") => {
      const response = await fetch(`${url.origin}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(cron)}`)
      const text = await response.text()
      if (!response.ok) throw new Error(`the scheduled handler answered ${response.status}: ${text}`)
    },
    dispose: () => mf.dispose()
  }
}

/** Polls the edge's `/healthz` until no shard of any region holds a spooled event; rejects after `timeoutMs` with the depths. */
export const waitForEmptySpools = async (edgeUrl: string, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const health = (await fetch(`${edgeUrl}/healthz`).then((response) => response.json())) as EdgeHealth
    const depths = Object.values(health.regions ?? {}).flatMap((region) =>
      Object.values(region.shards ?? {}).map((shard) => shard.spool?.depth ?? Number.NaN)
    )
    if (depths.length > 0 && depths.every((depth) => depth === 0)) return
    if (Date.now() > deadline) throw new Error(`the edge's spools did not drain within ${timeoutMs} ms: depths ${depths.join(", ")}`)
    await new Promise((resolveLater) => setTimeout(resolveLater, 100))
  }
}
