import type postgres from "postgres"
import { activeGeneration } from "../../consumers/registry.ts"
import { type PowerBiSettings, powerBiTokens } from "../../powerbi/auth.ts"
import { type PowerBiClient, powerBiClient } from "../../powerbi/client.ts"
import { martTableOf, PUSH_SEQ, type PushDatasetSpec, pushRow } from "../../powerbi/dataset.ts"
import { type EmulatorOptions, type PowerBiEmulator, startPowerBiEmulator } from "../../powerbi/emulator/server.ts"
import { qualified } from "../../platform/sql.ts"

/** The local mesh's Power BI: one tenant, one app registration, one workspace on shared capacity. */
export const LOCAL_TENANT = "00000000-0000-4000-8000-00000000c0de"
export const LOCAL_APP = { tenantId: LOCAL_TENANT, clientId: "ingest-mesh-pusher", clientSecret: "local-emulator-secret" }
export const LOCAL_WORKSPACE = "11111111-1111-4111-8111-111111111111"
/** An import dataset over the OEE marts' OData feed, as a Power BI Desktop user would publish it: refreshed after the oee projection catches up. */
export const LOCAL_IMPORT_DATASET = "22222222-2222-4222-8222-222222222222"

export interface LocalPowerBi {
  readonly emulator: PowerBiEmulator
  /** The settings a process uses to reach the emulator, as the environment would give them (`POWERBI_…`). */
  readonly settings: PowerBiSettings
  readonly env: Readonly<Record<string, string>>
  readonly client: () => PowerBiClient
  /** The emulator's clock, which the pusher must share: `speed` service milliseconds per real one. */
  readonly clock: () => number
  readonly sleep: (serviceMs: number) => Promise<void>
  readonly speed: number
  readonly close: () => Promise<void>
}

/** The settings with which `app` reaches `emulator` through msal-node unmodified (docs/powerbi.md, "The emulator"). */
export const emulatorSettings = (
  emulator: PowerBiEmulator,
  app: { readonly tenantId: string; readonly clientId: string; readonly clientSecret: string }
): PowerBiSettings => ({
  tenantId: app.tenantId,
  clientId: app.clientId,
  credential: { clientSecret: app.clientSecret },
  authorityHost: `https://localhost:${new URL(emulator.url).port}`,
  resource: "https://analysis.windows.net/powerbi/api",
  apiBase: `${emulator.url}/v1.0/myorg`,
  authorityMetadata: emulator.authorityFor(app.tenantId).authorityMetadata
})

/** Starts the emulator with the local tenant and workspace, its clock `speed` times real time. */
export const startLocalPowerBi = async (
  options: { readonly speed?: number; readonly port?: number } & Partial<Omit<EmulatorOptions, "clock" | "clockSpeed">> = {}
): Promise<LocalPowerBi> => {
  const speed = options.speed ?? 1
  const started = Date.now()
  const clock = () => started + (Date.now() - started) * speed
  const emulator = await startPowerBiEmulator({
    apps: [LOCAL_APP],
    workspaces: [{ id: LOCAL_WORKSPACE, capacity: "shared" }],
    ...options,
    clock
  })
  const settings = emulatorSettings(emulator, LOCAL_APP)
  const { authorityMetadata } = settings as { authorityMetadata: string }
  return {
    emulator,
    settings,
    env: {
      POWERBI_TENANT_ID: LOCAL_TENANT,
      POWERBI_CLIENT_ID: LOCAL_APP.clientId,
      POWERBI_CLIENT_SECRET: LOCAL_APP.clientSecret,
      POWERBI_AUTHORITY_HOST: settings.authorityHost,
      POWERBI_API_BASE: settings.apiBase,
      POWERBI_AUTHORITY_METADATA: authorityMetadata,
      POWERBI_WORKSPACE: LOCAL_WORKSPACE,
      POWERBI_CLOCK_SPEED: String(speed),
      POWERBI_CLOCK_ORIGIN: String(started)
    },
    client: () => powerBiClient(settings.apiBase, powerBiTokens(settings)),
    clock,
    sleep: (serviceMs) => new Promise((resolve) => setTimeout(resolve, Math.max(0, serviceMs / speed))),
    speed,
    close: () => emulator.close()
  }
}

const withoutSeq = (row: Readonly<Record<string, unknown>>): string => {
  const { [PUSH_SEQ]: _seq, ...rest } = row
  return JSON.stringify(rest)
}

/**
 * Per pushed table: the active generation's mart rows as they are pushed, and the rows the emulated
 * table holds (without the pusher's sequence column), each sorted: equal lists mean every row of
 * the mart is in Power BI exactly once and nothing else is.
 */
export const mirrorOf = async (
  sql: postgres.Sql,
  emulator: PowerBiEmulator,
  spec: PushDatasetSpec,
  datasetId: string
): Promise<ReadonlyArray<{ readonly table: string; readonly mart: ReadonlyArray<string>; readonly pushed: ReadonlyArray<string> }>> => {
  const active = await activeGeneration(sql, spec.marts.name)
  if (active === undefined) throw new Error(`${spec.marts.name} has no active generation`)
  return Promise.all(
    spec.tables.map(async (table) => {
      const mart = martTableOf(spec, table)
      const rows = await sql.unsafe(`SELECT to_jsonb(t) AS row FROM ${qualified(active.schema, mart.name)} t`)
      return {
        table: table.as,
        mart: rows.map((row) => withoutSeq(pushRow(mart, row.row as Record<string, unknown>, 0))).sort(),
        pushed: (emulator.tableRows(LOCAL_WORKSPACE, datasetId, table.as) ?? []).map(withoutSeq).sort()
      }
    })
  )
}
