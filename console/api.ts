import { readFile, readdir } from "node:fs/promises"
import { dirname, extname, join } from "node:path"
import { fileURLToPath } from "node:url"
import type postgres from "postgres"
import { CONSOLE_ADMIN_SCOPE } from "../contracts/scopes.ts"
import { redriveDeadLetters } from "../consumers/apply.ts"
import { activeGeneration } from "../consumers/registry.ts"
import { BadParameter, NotFound } from "../read/errors.ts"
import { createApiKey, listApiKeys, revokeApiKey } from "../read/keys.ts"
import type { ApiContext, ApiExtension } from "../read/server.ts"
import { consoleMonitor, type MonitorOptions } from "./monitor.ts"

/**
 * The operator's console, served beside the read API under its keys: one page (no data in it) and
 * a data API that answers only keys with the {@link CONSOLE_ADMIN_SCOPE} scope — 401 without a key,
 * 403 with a key that lacks it. The figures are {@link consoleMonitor}'s, read from the same status
 * functions `mesh status` prints.
 */

/** The scope of a key that may read the console's data and re-drive from it. */
export { CONSOLE_ADMIN_SCOPE }

const PAGES_DIR = join(dirname(fileURLToPath(import.meta.url)), "pages")
const ASSET_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8"
}

const error = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } }
})
const unauthorised = {
  "401": error("No API key, an unknown one, or a revoked one."),
  "403": error(`The key is not scoped to ${CONSOLE_ADMIN_SCOPE}.`)
}
const object = (description: string) => ({ description, content: { "application/json": { schema: { type: "object" } } } })
const ids = { type: "array", items: { type: "integer", minimum: 1 }, minItems: 1 }

const openapi: ApiExtension["openapi"] = {
  paths: {
    "/api/console/status": {
      get: {
        tags: ["console"],
        summary: "The operator's console: per source, projection, dead letter, quarantined event, Power BI table and edge shard.",
        responses: { "200": object("The mesh now, with rates and per-minute counts since the console started"), ...unauthorised }
      }
    },
    "/api/console/dead-letters/redrive": {
      post: {
        tags: ["console"],
        summary: "Projects dead letters of one projection again with the current code.",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: { type: "object", required: ["projection", "ids"], properties: { projection: { type: "string" }, ids } }
            }
          }
        },
        responses: { "200": object("Which were re-driven and which are still poison"), "400": error("A bad body."), ...unauthorised }
      }
    },
    "/api/console/quarantine/redrive": {
      post: {
        tags: ["console"],
        summary: "Judges quarantined events again with the current contract and appends those that pass, once.",
        requestBody: {
          required: true,
          content: { "application/json": { schema: { type: "object", required: ["ids"], properties: { ids } } } }
        },
        responses: { "200": object("The outcome of each"), "400": error("A bad body."), ...unauthorised }
      }
    }
  }
}

/** The ids of a re-drive body: whole numbers, at least one. */
export const idsOf = (body: unknown): ReadonlyArray<number> => {
  const value = (body as { ids?: unknown } | null)?.ids
  if (!Array.isArray(value) || value.length === 0 || !value.every((id) => Number.isSafeInteger(id) && (id as number) > 0))
    throw new BadParameter({
      parameter: "ids",
      message: `ids must be a non-empty list of positive whole numbers, got ${JSON.stringify(value)}`
    })
  return value as ReadonlyArray<number>
}

const bodyOf = async (c: ApiContext): Promise<unknown> => {
  try {
    return await c.req.json()
  } catch {
    throw new BadParameter({ parameter: "body", message: "the body is not JSON (send Content-Type: application/json)" })
  }
}

/** The console as a read API extension; `close` stops its sampling. */
export const consoleApi = (options: MonitorOptions): ApiExtension & { readonly close: () => void } => {
  const monitor = consoleMonitor(options)
  return {
    openapi,
    close: monitor.close,
    mount: (app, { allow, origin }) => {
      // The page and its assets hold no data: served without a key (the page asks for one).
      app.get("/console", async (c) => c.html(await readFile(join(PAGES_DIR, "console.html"), "utf8")))
      app.get("/console/assets/:file", async (c) => {
        const file = c.req.param("file")
        const type = ASSET_TYPES[extname(file)]
        if (type === undefined || !(await readdir(PAGES_DIR)).includes(file))
          throw new NotFound({ message: `no asset ${JSON.stringify(file)}; the console is at ${origin(c)}/console` })
        return c.body(await readFile(join(PAGES_DIR, file)), 200, { "Content-Type": type, "Cache-Control": "no-cache" })
      })

      app.get("/api/console/status", async (c) => {
        allow(c, CONSOLE_ADMIN_SCOPE)
        return c.json(await monitor.view())
      })
      app.post("/api/console/dead-letters/redrive", async (c) => {
        allow(c, CONSOLE_ADMIN_SCOPE)
        const body = await bodyOf(c)
        const name = (body as { projection?: unknown } | null)?.projection
        const projection = options.projections.find((candidate) => candidate.name === name)
        if (projection === undefined)
          throw new BadParameter({
            parameter: "projection",
            message: `no projection ${JSON.stringify(name)}; the projections are ${options.projections.map((one) => one.name).join(", ")}`
          })
        const letters = idsOf(body)
        const generation = await activeGeneration(options.sql, projection.name)
        if (generation === undefined)
          throw new BadParameter({ parameter: "projection", message: `${projection.name} has no active generation yet: run it first` })
        const result = await redriveDeadLetters(options.sql, projection, generation, letters)
        monitor.invalidate()
        return c.json(result)
      })
      app.post("/api/console/quarantine/redrive", async (c) => {
        allow(c, CONSOLE_ADMIN_SCOPE)
        const reports = await options.quarantine.redrive(idsOf(await bodyOf(c)))
        monitor.invalidate()
        return c.json({ reports })
      })
    }
  }
}

/**
 * A new key with the console's scope under `name`, the earlier keys of that name revoked: how a
 * harness (`npm run up`) prints a console address on every start without piling up live keys.
 */
export const freshConsoleKey = async (sql: postgres.Sql, name: string): Promise<string> => {
  for (const key of await listApiKeys(sql)) if (key.name === name && key.revokedAt === null) await revokeApiKey(sql, key.id)
  return (await createApiKey(sql, name, [CONSOLE_ADMIN_SCOPE], [CONSOLE_ADMIN_SCOPE])).key
}
