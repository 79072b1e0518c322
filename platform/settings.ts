import { Data } from "effect"

/**
 * The one settings loader. A setting is read from its environment variable, then from its
 * command-line flag, which wins when both are given; an unusable value stops the start with an
 * error that names the setting, the value and what it accepts.
 */

/** A setting that is missing or malformed: `setting` names the variable (and its flag). */
export class SettingError extends Data.TaggedError("SettingError")<{ readonly setting: string; readonly message: string }> {}

export type Env = Readonly<Record<string, string | undefined>>

/** Where settings come from: the environment, and the flags of the command that runs. */
export interface SettingSource {
  readonly env: Env
  readonly flags?: Readonly<Record<string, string | boolean | undefined>>
}

/** A setting's environment variable and, when it has one, its flag (without the dashes). */
export interface SettingName {
  readonly env: string
  readonly flag?: string
}

/** The setting as a user sets it here: its variable, and its flag when the command takes flags. */
const nameIn = (source: SettingSource, name: SettingName): string =>
  name.flag === undefined || source.flags === undefined ? name.env : `${name.env} (--${name.flag})`

/** The setting's text, or undefined when neither the flag nor the variable is given (an empty value counts as not given). */
export const optionalSetting = (source: SettingSource, name: SettingName): string | undefined => {
  const flag = name.flag === undefined ? undefined : source.flags?.[name.flag]
  if (typeof flag === "string" && flag !== "") return flag
  const value = source.env[name.env]
  return value === undefined || value === "" ? undefined : value
}

/** The setting's text; when it is not given, an error naming it and `hint` (how to set it). */
export const requiredSetting = (source: SettingSource, name: SettingName, hint: string): string => {
  const value = optionalSetting(source, name)
  if (value === undefined) throw new SettingError({ setting: name.env, message: `${nameIn(source, name)} is not set: ${hint}` })
  return value
}

/** A whole number of at least `minimum`, `fallback` when not given. */
export const wholeNumberSetting = (source: SettingSource, name: SettingName, fallback: number, minimum = 1): number => {
  const given = optionalSetting(source, name)
  if (given === undefined) return fallback
  if (!/^\d+$/.test(given) || Number(given) < minimum)
    throw new SettingError({
      setting: name.env,
      message: `${nameIn(source, name)} must be a whole number of at least ${minimum}, got ${JSON.stringify(given)}`
    })
  return Number(given)
}

/** A number (decimals allowed) of at least `minimum`, `fallback` when not given. */
export const numberSetting = (source: SettingSource, name: SettingName, fallback: number, minimum = 0): number => {
  const given = optionalSetting(source, name)
  if (given === undefined) return fallback
  if (!/^\d+(\.\d+)?$/.test(given) || Number(given) < minimum)
    throw new SettingError({
      setting: name.env,
      message: `${nameIn(source, name)} must be a number of at least ${minimum}, got ${JSON.stringify(given)}`
    })
  return Number(given)
}

export const DATABASE_URL: SettingName = { env: "DATABASE_URL", flag: "database-url" }
export const NATS_URL: SettingName = { env: "NATS_URL", flag: "nats-url" }
export const NATS_USER: SettingName = { env: "NATS_USER", flag: "nats-user" }
/** Passwords come from the environment only: on a command line they end up in the shell's history and in every `ps` listing. */
export const NATS_PASSWORD: SettingName = { env: "NATS_PASSWORD" }

/** The marts' database as its owner. */
export const databaseUrl = (source: SettingSource): string =>
  requiredSetting(
    source,
    DATABASE_URL,
    "set it to the marts' Postgres (postgres://user:password@host:5432/db), or start a local mesh with `npm run up`"
  )

/** How a process reaches the log: NATS URL, user (`defaultUser` when not set) and password. */
export interface NatsSettings {
  readonly url: string
  /** The servers `url` lists, comma-separated (a cluster's hub: every server, so a client rides through losing one). */
  readonly servers: ReadonlyArray<string>
  readonly user: string
  readonly password?: string
}

/** The items of a comma-separated setting, trimmed, empty ones left out. */
export const commaList = (value: string): ReadonlyArray<string> =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")

export const natsSettings = (source: SettingSource, defaultUser: string, defaultUrl = "nats://127.0.0.1:4222"): NatsSettings => {
  const password = optionalSetting(source, NATS_PASSWORD)
  const url = optionalSetting(source, NATS_URL) ?? defaultUrl
  return {
    url,
    servers: commaList(url),
    user: optionalSetting(source, NATS_USER) ?? defaultUser,
    ...(password === undefined ? {} : { password })
  }
}
