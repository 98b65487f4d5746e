/**
 * A chooser's scan probe: one connection to one listed host, under the pool's authentication
 * policy and that host's TLS options, that reads what the session is and closes.
 *
 * @internal
 */
import type * as Pg from "pg"
import type { HostRoute } from "./chooser.js"
import { sessionState, type SessionState } from "./session.js"

/** Connects a `Client` to the route with `config` (the pool's options), reads its state, ends it. */
export const probeSession = async (
  Client: typeof Pg.Client,
  config: Pg.ClientConfig,
  route: HostRoute
): Promise<SessionState> => {
  const client = new Client({ ...config, host: route.host, port: route.port, ssl: route.ssl })
  const parameters = new Map<string, string>()
  const connection: { on: (event: "parameterStatus", f: (msg: { parameterName: string; parameterValue: string }) => void) => void } =
    Reflect.get(client, "connection")
  connection.on("parameterStatus", (msg) => parameters.set(msg.parameterName, msg.parameterValue))
  // the outcome arrives through the promises below; a late socket error must not crash the process
  client.on("error", () => {})
  try {
    await client.connect()
    return await sessionState(client, parameters)
  } finally {
    // a probe we discard: a failure to close it cleanly changes nothing
    await client.end().catch(() => undefined)
  }
}
