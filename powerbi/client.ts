import { Data } from "effect"
import type { PowerBiTokens } from "./auth.ts"

/**
 * A refusal or failure from Power BI, with what a caller acts on: the status, the service's error
 * code and message (from either of its two body shapes, `{"error":{code,message}}` and the bare
 * `{"message"}` of a 429) and, when it asked to wait, `Retry-After` in seconds.
 */
export class PowerBiError extends Data.TaggedError("PowerBiError")<{
  readonly method: string
  readonly path: string
  readonly status: number
  readonly code: string
  readonly detail: string
  readonly retryAfterSeconds?: number
}> {
  override get message(): string {
    return `Power BI answered ${this.status} ${this.code} to ${this.method} ${this.path}: ${this.detail}${this.retryAfterSeconds === undefined ? "" : ` (retry after ${this.retryAfterSeconds} s)`}`
  }
}

/** Power BI's REST API under `apiBase` (…/v1.0/myorg), authenticated by `tokens`. */
export interface PowerBiClient {
  /** The parsed JSON body (undefined for an empty one); a status of 400 or more is a {@link PowerBiError}. */
  readonly request: <A = unknown>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown) => Promise<A>
}

const errorOf = async (response: Response, method: string, path: string): Promise<PowerBiError> => {
  const text = await response.text()
  let code = `HTTP${response.status}`
  let detail = text.slice(0, 500)
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string }; message?: string }
    code = parsed.error?.code ?? code
    detail = parsed.error?.message ?? parsed.message ?? detail
  } catch {
    // not JSON: the text is the detail
  }
  const retryAfter = Number(response.headers.get("retry-after") ?? "NaN")
  return new PowerBiError({
    method,
    path,
    status: response.status,
    code,
    detail,
    ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {})
  })
}

/** A client that sends each request with a token and, when Power BI refuses the token (401, 403), renews it once and sends again. */
export const powerBiClient = (
  apiBase: string,
  tokens: PowerBiTokens,
  fetcher: typeof fetch = fetch,
  /** A request unanswered this long is abandoned (its outcome unknown). */
  timeoutMs = 120_000
): PowerBiClient => ({
  request: async <A>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<A> => {
    const send = (token: string) =>
      fetcher(`${apiBase}${path}`, {
        method,
        signal: AbortSignal.timeout(timeoutMs),
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    let response = await send(await tokens.token())
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel()
      response = await send(await tokens.renew())
    }
    if (response.status >= 400) throw await errorOf(response, method, path)
    const text = await response.text()
    return (text === "" ? undefined : JSON.parse(text)) as A
  }
})
