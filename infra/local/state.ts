import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { Env } from "../../platform/settings.ts"

/** Where `npm run up` keeps the local mesh: its log, marts, secrets and passwords. */
export const LOCAL_STATE_DIR = resolve(process.cwd(), ".mesh")
export const LOCAL_STATE_FILE = join(LOCAL_STATE_DIR, "local.json")

export interface LocalState {
  readonly edgeUrl: string
  readonly secrets: Record<string, string>
  readonly natsPasswords: { admin: string; edge: string; projector: string; reports?: string; leaf?: string }
  /** The log's servers, comma-separated (a cluster's hub: all three). */
  readonly natsUrl?: string
  /** Set by `mesh cluster up`: the regions, and each region's edge. */
  readonly regions?: ReadonlyArray<string> | undefined
  readonly edgeUrls?: Readonly<Record<string, string>> | undefined
  readonly databaseUrl?: string
  /** Password of the embedded Postgres superuser, generated on the first `npm run up`. */
  readonly pgPassword?: string
  /** Password of the read API's login (`ingest_api`, in the read-only `ingest_reader` group). */
  readonly readerPassword?: string
  /** A key for every mart, made on the first `npm run up` so the local API can be tried at once. */
  readonly apiKey?: string
  readonly apiUrl?: string
  /** How the local Power BI emulator is reached (`POWERBI_…`), while `npm run up` runs. */
  readonly powerbi?: Readonly<Record<string, string>>
}

export const readLocalState = (): LocalState | undefined =>
  existsSync(LOCAL_STATE_FILE) ? (JSON.parse(readFileSync(LOCAL_STATE_FILE, "utf8")) as LocalState) : undefined

/** Writes the local state readable by its owner only: it holds every secret of the local mesh. */
export const writeLocalState = (state: LocalState, file = LOCAL_STATE_FILE): void => {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 })
  // A file made by an older version keeps its mode through writeFileSync.
  chmodSync(file, 0o600)
}

/**
 * The environment, with the addresses and passwords of the local mesh `npm run up` started filled
 * in where the environment does not name a deployment: for the CLI entry only, so `npm run mesh --
 * status` works against the local mesh while the commands themselves read nothing but settings.
 * `projector`, `reports`, `owner` and `powerbi` fill in when DATABASE_URL is not set, `admin` when NATS_URL is not;
 * `powerbi` fills in the local emulator's `POWERBI_…` settings too unless POWERBI_TENANT_ID is set.
 */
export const withLocalMesh = (
  env: Env,
  role: "projector" | "reports" | "owner" | "admin" | "powerbi",
  readLocal: () => LocalState | undefined = readLocalState
): Env => {
  const unset = (name: string) => env[name] === undefined || env[name] === ""
  // Read only when the environment names no deployment: a deployment never depends on the file.
  const local = unset(role === "admin" ? "NATS_URL" : "DATABASE_URL") ? readLocal() : undefined
  if (local === undefined) return env
  if (role === "admin")
    return local.natsUrl === undefined
      ? env
      : { ...env, NATS_URL: local.natsUrl, NATS_PASSWORD: env.NATS_PASSWORD ?? local.natsPasswords.admin }
  if (local.databaseUrl === undefined) return env
  if (role === "owner") return { ...env, DATABASE_URL: local.databaseUrl }
  if (role === "powerbi")
    return unset("POWERBI_TENANT_ID")
      ? { ...local.powerbi, ...env, DATABASE_URL: local.databaseUrl }
      : { ...env, DATABASE_URL: local.databaseUrl }
  if (local.natsUrl === undefined) return env
  const user = role === "reports" ? "reports" : "projector"
  return {
    ...env,
    DATABASE_URL: local.databaseUrl,
    NATS_URL: local.natsUrl,
    NATS_USER: user,
    NATS_PASSWORD: (role === "reports" ? local.natsPasswords.reports : local.natsPasswords.projector) ?? ""
  }
}
