import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"

/** Where `npm run up` keeps the local mesh: its log, marts, secrets and passwords. */
export const LOCAL_STATE_DIR = resolve(process.cwd(), ".mesh")
export const LOCAL_STATE_FILE = join(LOCAL_STATE_DIR, "local.json")

export interface LocalState {
  readonly edgeUrl: string
  readonly secrets: Record<string, string>
  readonly natsPasswords: { admin: string; edge: string; projector: string }
  readonly natsUrl?: string
  readonly databaseUrl?: string
  /** Password of the embedded Postgres superuser, generated on the first `npm run up`. */
  readonly pgPassword?: string
  /** Password of the read API's login (`ingest_api`, in the read-only `ingest_reader` group). */
  readonly readerPassword?: string
  /** A key for every mart, made on the first `npm run up` so the local API can be tried at once. */
  readonly apiKey?: string
  readonly apiUrl?: string
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
