import { ConfidentialClientApplication, type Configuration } from "@azure/msal-node"
import { optionalSetting, requiredSetting, type SettingSource } from "../platform/settings.ts"

/**
 * Power BI's credentials and where to reach it: a service principal (tenant, client id, and a
 * client secret or certificate — from the environment only), the authority host and the Power BI
 * resource and API base (configurable for sovereign clouds, powerbi.md §2.3).
 */
export interface PowerBiSettings {
  readonly tenantId: string
  readonly clientId: string
  readonly credential:
    { readonly clientSecret: string } | { readonly certificate: { readonly thumbprintSha256: string; readonly privateKey: string } }
  /** `https://login.microsoftonline.com` by default. */
  readonly authorityHost: string
  /** `https://analysis.windows.net/powerbi/api` by default: tokens are asked for its `.default` scope. */
  readonly resource: string
  /** `https://api.powerbi.com/v1.0/myorg` by default. */
  readonly apiBase: string
  /** The OpenID configuration to use instead of fetching it (POWERBI_AUTHORITY_METADATA): how the emulator is reached over plain HTTP. */
  readonly authorityMetadata?: string
}

const hint = "see docs/powerbi.md: an app registration's tenant id, client id and secret, from the environment"

/** Power BI settings from the environment: POWERBI_TENANT_ID, POWERBI_CLIENT_ID, POWERBI_CLIENT_SECRET (or POWERBI_CERT_THUMBPRINT + POWERBI_CERT_KEY), … */
export const powerBiSettings = (source: SettingSource): PowerBiSettings => {
  const secret = optionalSetting(source, { env: "POWERBI_CLIENT_SECRET" })
  const credential =
    secret !== undefined
      ? { clientSecret: secret }
      : {
          certificate: {
            thumbprintSha256: requiredSetting(source, { env: "POWERBI_CERT_THUMBPRINT" }, `or POWERBI_CLIENT_SECRET; ${hint}`),
            privateKey: requiredSetting(source, { env: "POWERBI_CERT_KEY" }, hint)
          }
        }
  const metadata = optionalSetting(source, { env: "POWERBI_AUTHORITY_METADATA" })
  return {
    tenantId: requiredSetting(source, { env: "POWERBI_TENANT_ID" }, hint),
    clientId: requiredSetting(source, { env: "POWERBI_CLIENT_ID" }, hint),
    credential,
    authorityHost: (optionalSetting(source, { env: "POWERBI_AUTHORITY_HOST" }) ?? "https://login.microsoftonline.com").replace(/\/$/, ""),
    resource: (optionalSetting(source, { env: "POWERBI_RESOURCE" }) ?? "https://analysis.windows.net/powerbi/api").replace(/\/$/, ""),
    apiBase: (optionalSetting(source, { env: "POWERBI_API_BASE" }) ?? "https://api.powerbi.com/v1.0/myorg").replace(/\/$/, ""),
    ...(metadata === undefined ? {} : { authorityMetadata: metadata })
  }
}

/** A token source for Power BI: `token()` for a (cached) access token, `renew()` after Power BI refused one. */
export interface PowerBiTokens {
  readonly token: () => Promise<string>
  /** A new token, skipping the cache: for the one retry after a 401/403 from Power BI. */
  readonly renew: () => Promise<string>
}

/**
 * One msal-node `ConfidentialClientApplication` for the process (its in-memory cache holds the token
 * until five minutes before it expires); client credentials for the resource's `.default` scope.
 */
export const powerBiTokens = (settings: PowerBiSettings): PowerBiTokens => {
  const authority = `${settings.authorityHost}/${settings.tenantId}`
  const auth: Configuration["auth"] = {
    clientId: settings.clientId,
    authority,
    ...("clientSecret" in settings.credential
      ? { clientSecret: settings.credential.clientSecret }
      : { clientCertificate: settings.credential.certificate }),
    ...(settings.authorityMetadata === undefined
      ? {}
      : { authorityMetadata: settings.authorityMetadata, knownAuthorities: [new URL(authority).host] })
  }
  const client = new ConfidentialClientApplication({ auth })
  const scopes = [`${settings.resource}/.default`]
  const acquire = async (skipCache: boolean) => {
    const result = await client.acquireTokenByClientCredential({ scopes, skipCache })
    if (result === null) throw new Error(`no token for ${scopes[0]} from ${authority}`)
    return result.accessToken
  }
  return { token: () => acquire(false), renew: () => acquire(true) }
}
