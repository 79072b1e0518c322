import { mkdir, readdir, readFile, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Hono } from "hono"
import { NotFound } from "./errors.ts"
import { marts } from "./feeds.ts"

/**
 * What BI tools open to reach the marts: a Power BI data source file (`.pbids`) per mart naming its
 * OData service root, and the Power Query M (`.pq`) and DAX (`.dax`) files kept in `read/bi/`,
 * served with this API's address in them. None of them holds a key: Power BI asks for it (Web API
 * credential) when the file is opened.
 */

/** The address the M files in `read/bi/` are written against; replaced by the API's own when they are served or written. */
export const EXAMPLE_ORIGIN = "https://reports.example.com"

/** The folder of the M and DAX files. */
export const BI_FOLDER = join(dirname(fileURLToPath(import.meta.url)), "bi")

/** A Power BI Desktop data source file: one OData connection, the mode left for Desktop to ask (OData imports). */
export interface PbidsFile {
  readonly version: "0.1"
  readonly connections: ReadonlyArray<{
    readonly details: { readonly protocol: "odata"; readonly address: { readonly url: string } }
    readonly options: Readonly<Record<string, never>>
    readonly mode: null
  }>
}

const withoutTrailingSlash = (origin: string) => origin.replace(/\/+$/, "")

/** The OData service root of `mart` at `origin`, with the trailing slash OData.Feed's navigation expects. */
export const odataServiceRoot = (origin: string, mart: string): string => `${withoutTrailingSlash(origin)}/odata/${mart}/`

/** The `.pbids` file of `mart`'s OData feed at `origin`. */
export const pbidsFor = (origin: string, mart: string): PbidsFile => ({
  version: "0.1",
  connections: [{ details: { protocol: "odata", address: { url: odataServiceRoot(origin, mart) } }, options: {}, mode: null }]
})

export const pbidsFileName = (mart: string): string => `${mart}.pbids`

/** An M or DAX file's text with {@link EXAMPLE_ORIGIN} replaced by `origin`. */
export const withOrigin = (text: string, origin: string): string => text.replaceAll(EXAMPLE_ORIGIN, withoutTrailingSlash(origin))

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  ".pbids": "application/json; charset=utf-8",
  ".pq": "text/plain; charset=utf-8",
  ".dax": "text/plain; charset=utf-8"
}

const extensionOf = (name: string) => name.slice(name.lastIndexOf("."))

/** Every BI file for the API at `origin`, by file name: a `.pbids` per mart, then the M and DAX files of `read/bi/`. */
export const biFiles = async (origin: string): Promise<ReadonlyMap<string, string>> => {
  const files = new Map<string, string>(marts.map((mart) => [pbidsFileName(mart), `${JSON.stringify(pbidsFor(origin, mart), null, 2)}\n`]))
  for (const name of (await readdir(BI_FOLDER)).sort()) {
    if (MEDIA_TYPES[extensionOf(name)] !== undefined && !files.has(name))
      files.set(name, withOrigin(await readFile(join(BI_FOLDER, name), "utf8"), origin))
  }
  return files
}

/** Writes {@link biFiles} for the API at `origin` into `directory` (made if missing); the paths written. */
export const writeBiFiles = async (directory: string, origin: string): Promise<ReadonlyArray<string>> => {
  await mkdir(directory, { recursive: true })
  const written: Array<string> = []
  for (const [name, text] of await biFiles(origin)) {
    const path = join(directory, name)
    await writeFile(path, text)
    written.push(path)
  }
  return written
}

/**
 * `GET /bi` (the files' addresses) and `GET /bi/<file>`: `<mart>.pbids`, the M and DAX files, with
 * the address readers reach the API at (`publicUrl`, else the request's origin). No key: they hold none.
 */
export const biRoutes = (publicUrl: string | undefined): Hono => {
  const app = new Hono()
  const originOf = (url: string) => (publicUrl === undefined ? new URL(url).origin : withoutTrailingSlash(publicUrl))
  app.get("/", async (c) => {
    const origin = originOf(c.req.url)
    const names = [...(await biFiles(origin)).keys()]
    return c.json({ files: Object.fromEntries(names.map((name) => [name, `${origin}/bi/${name}`])) })
  })
  app.get("/:file", async (c) => {
    const name = c.req.param("file")
    const text = (await biFiles(originOf(c.req.url))).get(name)
    if (text === undefined) {
      throw new NotFound({
        message: `no BI file ${JSON.stringify(name)}; the files are ${marts.map(pbidsFileName).join(", ")} and the M and DAX files listed at /bi`
      })
    }
    return c.body(text, 200, {
      "Content-Type": MEDIA_TYPES[extensionOf(name)] as string,
      "Content-Disposition": `attachment; filename="${name}"`,
      "Cache-Control": "no-cache"
    })
  })
  return app
}
