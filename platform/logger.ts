/** The one logger: a JSON object per line on stdout/stderr, readable by any log pipeline. */
export type LogLevel = "debug" | "info" | "warn" | "error"

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

let threshold: LogLevel = "info"

export const setLogLevel = (level: LogLevel): void => {
  threshold = level
}

export const logEvent = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void => {
  if (order[level] < order[threshold]) return
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })
  if (level === "error" || level === "warn") console.error(line)
  else console.log(line)
}
