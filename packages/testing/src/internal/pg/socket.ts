/**
 * Superuser queries over the server's private unix socket (trust authentication).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Pg from "pg"
import { describeCause, failure, type PgTestServerError } from "./testServerError.js"

/** @internal */
export interface SocketAddress {
  readonly socketDir: string
  readonly port: number
}

/** @internal */
export const query = (
  address: SocketAddress,
  sql: string,
  params: ReadonlyArray<unknown> = [],
  operation = "query"
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, PgTestServerError> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Pg.Client({
          host: address.socketDir,
          port: address.port,
          user: "postgres",
          database: "postgres",
          password: "",
          ssl: false,
          connectionTimeoutMillis: 5_000,
          application_name: "takumi-testing"
        })
        // Errors of this short-lived client surface through connect()/query(); the listener only
        // keeps a server shutdown during the query from crashing the process.
        client.on("error", () => undefined)
        try {
          await client.connect()
        } catch (cause) {
          await client.end().catch(() => undefined)
          throw cause
        }
        return client
      },
      catch: (cause) =>
        failure(operation, `cannot connect as postgres over ${address.socketDir} port ${address.port}: ${describeCause(cause)}`)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query<Record<string, unknown>>(sql, [...params]).then((result) => result.rows),
        // The server's message only: the statement text may carry a password (ALTER ROLE ... PASSWORD).
        catch: (cause) => failure(operation, describeCause(cause))
      }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )
