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
  /** The answer itself (status, headers, a binary body) for a status below 400; 400 or more is a {@link PowerBiError}. */
  readonly response: (method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal) => Promise<Response>
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
): PowerBiClient => {
  const response = async (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> => {
    const send = (token: string) =>
      fetcher(`${apiBase}${path}`, {
        method,
        signal: signal === undefined ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    let answer = await send(await tokens.token())
    if (answer.status === 401 || (answer.status === 403 && (await isTokenRefusal(answer)))) {
      await answer.body?.cancel().catch(() => undefined)
      answer = await send(await tokens.renew())
    }
    if (answer.status >= 400) throw await errorOf(answer, method, path)
    return answer
  }
  return {
    response,
    request: async <A>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<A> => {
      const text = await (await response(method, path, body)).text()
      return (text === "" ? undefined : JSON.parse(text)) as A
    }
  }
}

/** Whether a 403 refuses the token (expired: a new one may pass) rather than the request; read from a clone, the answer stays readable. */
const isTokenRefusal = async (answer: Response): Promise<boolean> => {
  const text = await answer
    .clone()
    .text()
    .catch(() => "")
  return !/FeatureNotAvailable|Forbidden/i.test(text) || /TokenExpired/i.test(text)
}
