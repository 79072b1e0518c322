/**
 * The nats-server features the mesh uses that not every server has, each with the first version
 * that has it: one table, read wherever behaviour depends on the server (as nats.js does). Tests
 * and CI run Debian's 2.9.10.
 */
export const SERVER_FEATURES = {
  /** `jetstream { sync_interval: always }`: fsync before every PubAck. On 2.9 the interval is fixed at 60 s. */
  syncIntervalAlways: "2.10.0"
} as const

export type ServerFeature = keyof typeof SERVER_FEATURES

const parts = (version: string): [number, number, number] => {
  const match = /(\d+)\.(\d+)\.(\d+)/.exec(version)
  if (match === null) throw new Error(`not a nats-server version: ${JSON.stringify(version)}`)
  return [Number(match[1]), Number(match[2]), Number(match[3])]
}

/** Whether `version` (e.g. `2.9.10`, `v2.10.1`) is at least `minimum`. */
export const atLeast = (version: string, minimum: string): boolean => {
  const [a, b] = [parts(version), parts(minimum)]
  for (let i = 0; i < 3; i++) if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) > (b[i] as number)
  return true
}

export const serverSupports = (version: string, feature: ServerFeature): boolean => atLeast(version, SERVER_FEATURES[feature])
