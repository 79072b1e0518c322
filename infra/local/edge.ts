import { mkdirSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"
import { Log, LogLevel, Miniflare } from "miniflare"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

/** Must match `compatibility_date` in wrangler.toml. */
export const COMPATIBILITY_DATE = "2026-04-01"

let bundled: Promise<string> | undefined

/** Bundles `edge/worker.ts` for workerd once per process, as wrangler would. */
export const bundleEdge = (): Promise<string> => {
  bundled ??= (async () => {
    const outdir = join(ROOT, ".build", "edge")
    mkdirSync(outdir, { recursive: true })
    const outfile = join(outdir, "worker.js")
    await build({
      entryPoints: [join(ROOT, "edge", "worker.ts")],
      outfile,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      conditions: ["workerd", "worker", "browser"],
      external: ["cloudflare:*", "crypto"],
      logLevel: "silent"
    })
    return outfile
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
}

export interface Edge {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string
  readonly dispose: () => Promise<void>
}

/** Runs the edge Worker and its Durable Object in workerd (Miniflare) on a real HTTP port. */
export const startEdge = async (options: EdgeOptions): Promise<Edge> => {
  const scriptPath = await bundleEdge()
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    compatibilityDate: COMPATIBILITY_DATE,
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    log: new Log(options.verbose === true ? LogLevel.INFO : LogLevel.WARN),
    cf: false,
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
