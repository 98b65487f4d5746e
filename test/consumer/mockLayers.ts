/**
 * What a service's own tests do with the installed packages: `SecureSqlClient.layer` on mock
 * configuration and secrets layers (`DbConfig.layerTest`, `SecretsBackend.layerTest`) instead of
 * the environment, and a `catchTags` on the typed startup errors. The consumer test compiles it
 * outside this repository and runs it with plain `node <host> <port> <ca file> <user> <password>`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { DbConfig } from "@takumi/config"
import { SecureSqlClient } from "@takumi/db"
import { SecretsBackend } from "@takumi/secrets"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

const [host = "127.0.0.1", port = "5432", caPath = "ca.pem", user = "app", password = ""] = process.argv.slice(2)

const database = SecureSqlClient.layer.pipe(
  Layer.provide(DbConfig.layerTest({
    host,
    port: Number(port),
    database: "app",
    user,
    tls: { ca: Option.some({ _tag: "File", path: caPath }) }
  })),
  Layer.provide(SecretsBackend.layerTest({ DB_PASSWORD: password }))
)

const fail = (line: string) =>
  Effect.zipRight(Console.error(line), Effect.sync(() => {
    process.exitCode = 1
  }))

Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly user: string }>`SELECT current_user AS user`
  yield* Console.log(`current_user=${rows[0]?.user}`)
}).pipe(
  Effect.provide(database),
  Effect.catchTags({
    AuthenticationFailed: (error) => fail(`AuthenticationFailed user=${error.user}`),
    CertificateUntrusted: (error) => fail(`CertificateUntrusted: ${error.message}`)
  }),
  Effect.catchAll((error) => fail(`${error._tag}: ${error.message}`)),
  Effect.runPromise
)
