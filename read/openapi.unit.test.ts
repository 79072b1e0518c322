import Ajv2020 from "ajv/dist/2020.js"
import { describe, expect, it } from "vitest"
import { NotFound } from "./errors.ts"
import { exportEndpoints } from "./exports.ts"
import { docsAsset, docsPage, KEY_SECURITY, openApiDocument, SECURED_PREFIXES, viewerConfiguration, withKeySecurity } from "./openapi.ts"

const SERVER = "https://reports.example.com"
const document = openApiDocument(SERVER)

interface Operation {
  readonly security?: ReadonlyArray<Record<string, ReadonlyArray<string>>>
  readonly parameters?: ReadonlyArray<{ readonly name: string; readonly in: string; readonly example?: unknown }>
  readonly responses: Record<string, { readonly content?: Record<string, { readonly schema?: object; readonly example?: unknown }> }>
}
const operations = Object.entries(document.paths).flatMap(([path, item]) =>
  Object.entries(item as Record<string, Operation>).map(([method, operation]) => ({ path, method, operation }))
)

describe("the OpenAPI document", () => {
  it("declares the three ways a key travels: X-API-Key, Authorization: Bearer and api_key", () => {
    expect(document.components.securitySchemes).toMatchObject({
      ApiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key" },
      BearerAuth: { type: "http", scheme: "bearer" },
      ApiKeyQuery: { type: "apiKey", in: "query", name: "api_key" }
    })
  })

  it("asks for a key on every operation under /api, /metrics and /odata, and for none on /bi", () => {
    const secured = operations.filter(({ path }) => SECURED_PREFIXES.some((prefix) => path.startsWith(prefix)))
    expect(secured.length).toBeGreaterThan(exportEndpoints.length)
    for (const { path, operation } of secured) expect(operation.security, path).toEqual(KEY_SECURITY)
    for (const { path, operation } of operations.filter(({ path }) => path.startsWith("/bi"))) expect(operation.security, path).toEqual([])
    expect(operations.some(({ path }) => path.startsWith("/bi"))).toBe(true)
  })

  it("keeps an extension's own security and secures the rest of its operations", () => {
    const paths = withKeySecurity({
      "/api/x": { get: { responses: {} }, post: { security: [], responses: {} } },
      "/public": { get: { responses: {} } }
    }) as Record<string, Record<string, Operation>>
    expect(paths["/api/x"]?.get?.security).toEqual(KEY_SECURITY)
    expect(paths["/api/x"]?.post?.security).toEqual([])
    expect(paths["/public"]?.get?.security).toBeUndefined()
  })

  it("gives every 200 an example, and every parameter but the opaque $skiptoken one", () => {
    for (const { path, operation } of operations) {
      const content = operation.responses["200"]?.content ?? {}
      expect(
        Object.values(content).some((media) => media.example !== undefined),
        path
      ).toBe(true)
      for (const parameter of operation.parameters ?? [])
        if (parameter.name !== "$skiptoken") expect(parameter.example, `${path} ${parameter.name}`).toBeDefined()
    }
  })

  it("has JSON examples that match their own schemas", () => {
    const ajv = new Ajv2020({ strict: false })
    for (const { path, operation } of operations) {
      const json = operation.responses["200"]?.content?.["application/json"]
      if (json?.schema === undefined || JSON.stringify(json.schema).includes("$ref")) continue
      const validate = ajv.compile(json.schema)
      expect(validate(json.example), `${path}: ${JSON.stringify(validate.errors)}`).toBe(true)
    }
  })
})

describe("the docs page", () => {
  const page = docsPage(document)

  it("loads the viewer from the API's own assets and the document from openapi.json, by relative addresses", () => {
    expect(page).toContain('<script src="docs/assets/api-reference.js"></script>')
    expect(viewerConfiguration("t")).toMatchObject({
      url: "openapi.json",
      withDefaultFonts: false,
      telemetry: false,
      agent: { disabled: true }
    })
    expect(page).not.toMatch(/<(script|link)[^>]+(src|href)="https?:/)
  })

  it("lists the operations without JavaScript", () => {
    expect(page).toContain("<noscript>")
    expect(page).toContain("<code>GET /api/oee/export/data-mart</code>")
  })

  it("cannot be closed early by a title holding </script>", () => {
    const hostile = docsPage({ ...document, info: { ...document.info, title: "</script><script>alert(1)</script>" } })
    expect(hostile.match(/<\/script>/g)).toHaveLength(2)
  })

  it("serves the viewer's bundle from its package, and refuses any other asset", async () => {
    const asset = await docsAsset("api-reference.js")
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
    expect((await asset.text()).length).toBeGreaterThan(100_000)
    await expect(docsAsset("../package.json")).rejects.toBeInstanceOf(NotFound)
  })
})
