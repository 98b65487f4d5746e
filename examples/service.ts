/**
 * A service's database setup as the README shows it, and what the consumer test installs from
 * the packed tarballs and runs with plain `node` (compiled with `tsc`, no TypeScript loader).
 *
 * `TakumiDb.layer` reads the environment (`NODE_ENV`, `DB_*`, `SECRETS_BACKEND`, ...), resolves
 * the password from the secrets backend, opens a TLS-verified pool and checks the server's
 * posture; the program then runs on that pool. A refusal at startup is one typed error with a
 * message that says what to fix: the program prints it and exits with status 1.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly ssl: boolean; readonly version: string | null }>`
    SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
  yield* Console.log(`connected: ssl=${rows[0]?.ssl} protocol=${rows[0]?.version}`)
})

/** Prints why the service did not start, and fails the process. */
const refused = (what: string, error: { readonly _tag: string; readonly message: string }) =>
  Effect.zipRight(
    Console.error(`${what} (${error._tag}): ${error.message}`),
    Effect.sync(() => {
      process.exitCode = 1
    })
  )

program.pipe(
  Effect.provide(TakumiDb.layer),
  // Every startup failure is its own tag, so a service can branch on the ones it treats apart.
  Effect.catchTags({
    InsecureConfiguration: (error) => refused(`the security policy refused ${error.variable}`, error),
    AuthenticationFailed: (error) => refused(`PostgreSQL refused the password of ${error.user}`, error)
  }),
  Effect.catchAll((error) => refused("the database layer did not start", error)),
  Effect.runPromise
)
