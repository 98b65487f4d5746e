/**
 * `npm run example:mutual-tls` — mutual TLS: the server's pg_hba says `hostssl … cert
 * clientcert=verify-full`, so PostgreSQL authenticates the role by the client certificate's CN
 * and asks for no password. `DB_SSL_CERT` and `DB_SSL_KEY` name the client certificate (here one
 * issued for role `app` by the test CA of @takumi/testing); the secrets backend is never asked.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"
import { heading, ok, runExample, startDatabase, withEnvironment } from "./internal/harness.js"

runExample(
  "Mutual TLS: a client certificate instead of a password",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    yield* db.server.reload({ hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }] }).pipe(Effect.orDie)
    const client = yield* db.pki.client("app")
    yield* ok("pg_hba: hostssl cert clientcert=verify-full (no password is accepted)")
    yield* ok("client certificate for CN=app issued by the test CA")

    yield* heading("TakumiDb.layer with DB_SSL_CERT and DB_SSL_KEY, no DB_PASSWORD:")
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [session] = yield* sql<{ user: string; ssl: boolean; version: string; clientDn: string | null }>`
        SELECT current_user AS user, ssl, version, client_dn AS "clientDn" FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
      yield* ok(`connected as ${session?.user} over ${session?.version}; pg_stat_ssl.client_dn=${session?.clientDn}`)
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({
        ...db.env,
        NODE_ENV: "development",
        // the env backend holds no password: certificate authentication never asks for one
        SECRETS_BACKEND: "env",
        DB_SSL_CERT: client.certPath,
        DB_SSL_KEY: client.keyPath
      })
    )
  })
)
