/**
 * `npm run example:vault` — production with HashiCorp Vault: `SECRETS_BACKEND=vault`, the
 * password in a KV v2 secret, read over HTTPS verified against `VAULT_CACERT`. Vault here is
 * VaultDouble from @takumi/testing, a local HTTPS server speaking Vault's KV v2 wire format — a
 * protocol double, not Vault. The database is a throwaway PostgreSQL with TLS.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import { VaultDouble } from "@takumi/testing"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { heading, ok, runExample, type Session, sessionQuery, startDatabase, withEnvironment } from "./internal/harness.js"

const VAULT_PATH = "secret/takumi/production"

runExample(
  "Production with Vault (VaultDouble: a protocol double, not the real Vault)",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    const token = `hvs.${randomBytes(12).toString("hex")}`
    const vault = yield* VaultDouble.make({ token, tls: db.pki.server })
    yield* vault.put(VAULT_PATH, { DB_PASSWORD: db.password })
    yield* ok(`Vault double ${vault.address} (HTTPS, test CA) holding ${VAULT_PATH}`)

    yield* heading("TakumiDb.layer with NODE_ENV=production, SECRETS_BACKEND=vault:")
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [session] = yield* sql.unsafe<Session>(sessionQuery)
      yield* ok(`password read from Vault (${yield* vault.requestCount()} request), never printed`)
      yield* ok(`connected as ${session?.user}; pg_stat_ssl: ssl=${session?.ssl} ${session?.version} ${session?.cipher}`)
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({
        ...db.env,
        NODE_ENV: "production",
        SECRETS_BACKEND: "vault",
        VAULT_ADDR: vault.address,
        VAULT_TOKEN: token,
        VAULT_PATH,
        VAULT_CACERT: db.pki.ca.certPath
      })
    )
  })
)
