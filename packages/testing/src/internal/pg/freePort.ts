/**
 * A free TCP port on 127.0.0.1, probed by binding port 0: a server started on it may still lose
 * the race to another process, so callers retry bind failures.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import { describeCause, failure, type PgTestServerError } from "./testServerError.js"

/** @internal */
export const freePort: Effect.Effect<number, PgTestServerError> = Effect.async<number, PgTestServerError>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(failure("start", `no free port: ${describeCause(error)}`))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})
