import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { Env } from "../../platform/settings.ts"

/** Where `npm run up` keeps the local mesh: its log, marts, secrets and passwords. */
export const LOCAL_STATE_DIR = resolve(process.cwd(), ".mesh")
export const LOCAL_STATE_FILE = join(LOCAL_STATE_DIR, "local.json")

export interface LocalState {
  readonly edgeUrl: string
  /** The current secret of each source: the one `mesh samples` signs with. */
  readonly secrets: Record<string, string>
  /**
   * Secrets that still verify beside the current one, per source: the one `up --rotate-secrets`
   * replaced, or the rest of a `WEBHOOK_SECRETS` list given to `up`.
   */
  readonly previousSecrets?: Readonly<Record<string, ReadonlyArray<string>>> | undefined
  /** The `SOURCES` setting the last `up` gave the edge (JSON, as the deployed edge takes it), so `mesh samples` knows those sources. */
  readonly sources?: string | undefined
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

/** The secrets the local edge takes per source (its `WEBHOOK_SECRETS`): the current one first, then those that still verify. */
export const edgeSecretsOf = (state: Pick<LocalState, "secrets" | "previousSecrets">): Record<string, ReadonlyArray<string>> =>
  Object.fromEntries(Object.entries(state.secrets).map(([name, secret]) => [name, [secret, ...(state.previousSecrets?.[name] ?? [])]]))

/** How `up` changes the local secrets before it starts the edge. */
export interface LocalSecretChanges {
  /** Every source the edge runs with: the defaults and those `SOURCES` declares. */
  readonly sources: ReadonlyArray<string>
  /** A new secret of the form the source's scheme takes. */
  readonly generate: (source: string) => string
  /** `WEBHOOK_SECRETS` as given to `up`: these sources' secrets, the current one first, replace the stored ones. */
  readonly given?: Readonly<Record<string, ReadonlyArray<string>>>
  /** A new current secret for every source not given; the one it replaces still verifies, older ones no longer do. */
  readonly rotate?: boolean
  /** Only the current secrets verify: the previous ones of the sources not given are forgotten. */
  readonly retirePrevious?: boolean
}

/**
 * The local mesh's secrets after `up`'s changes: a source without one gets one, a rotation keeps the
 * replaced secret as the previous one (both verify, as during a rotation in production), and
 * retiring forgets it.
 */
export const changeLocalSecrets = (
  state: Pick<LocalState, "secrets" | "previousSecrets">,
  changes: LocalSecretChanges
): Pick<LocalState, "secrets" | "previousSecrets"> => {
  if (changes.rotate === true && changes.retirePrevious === true)
    throw new Error("--rotate-secrets keeps the replaced secret verifying and --retire-previous-secrets forgets it: give one of them")
  const secrets: Record<string, string> = { ...state.secrets }
  const previous: Record<string, ReadonlyArray<string>> = { ...state.previousSecrets }
  for (const name of changes.sources) {
    const [current, ...others] = changes.given?.[name] ?? []
    if (current !== undefined) {
      secrets[name] = current
      previous[name] = others
      continue
    }
    const stored = secrets[name]
    if (stored === undefined) secrets[name] = changes.generate(name)
    else if (changes.rotate === true) {
      previous[name] = [stored]
      secrets[name] = changes.generate(name)
    } else if (changes.retirePrevious === true) previous[name] = []
  }
  return {
    secrets,
    previousSecrets: Object.fromEntries(Object.entries(previous).filter(([name, list]) => list.length > 0 && secrets[name] !== undefined))
  }
}
