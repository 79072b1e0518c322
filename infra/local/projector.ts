import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { PROJECTOR_INBOX_PREFIX } from "../../contracts/log.ts"
import type { NatsServer } from "../nats/server.ts"

/** A connection as the least-privilege projector user. */
export const connectProjector = (nats: {
  readonly url: string | ReadonlyArray<string>
  readonly projector: NatsServer["projector"]
}): Promise<NatsConnection> =>
  connect({
    servers: typeof nats.url === "string" ? nats.url : [...nats.url],
    user: nats.projector.user,
    pass: nats.projector.password,
    name: "ingest-projector",
    inboxPrefix: PROJECTOR_INBOX_PREFIX
  })
