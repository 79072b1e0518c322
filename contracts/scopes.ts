import { REPORTS_ADMIN_SCOPE } from "./reports.ts"

/**
 * API key scopes beyond the marts: what a key may change or watch rather than read. A key gets one
 * only by naming it — `*` is every mart, never an admin scope — so a BI tool's all-marts key can
 * neither change the report registry nor open the operator's console.
 */
export const CONSOLE_ADMIN_SCOPE = "console:admin"

export const ADMIN_SCOPES: ReadonlyArray<string> = [REPORTS_ADMIN_SCOPE, CONSOLE_ADMIN_SCOPE]

/** Whether a key granted `granted` (mart names, `*`, admin scopes) may use `scope` (a mart or an admin scope). */
export const grants = (granted: ReadonlyArray<string>, scope: string, everyMart = "*"): boolean =>
  granted.includes(scope) || (!ADMIN_SCOPES.includes(scope) && granted.includes(everyMart))
