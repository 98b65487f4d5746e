/**
 * End to end with Vault dynamic database credentials: `TakumiDb.layer` from production variables
 * with `VAULT_DB_ROLE` (a ConfigProvider standing in for the environment), against a real
 * PostgreSQL with TLS and the Vault double acting as the database secrets engine on it (a local
 * server speaking Vault's wire format to the real node-vault client; it is not Vault).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { TakumiDb } from "@takumi/db"
import { TestDatabase, VaultDouble } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"

const TOKEN = "hvs.e2e-dynamic-token-3b71d0"
const APP_PASSWORD = "e2e-dynamic-app-Pw-8e21c4"

describe("TakumiDb end to end with VAULT_DB_ROLE", () => {
  it.live("connects in production as the user Vault issued, and revokes the lease when the layer closes", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })
      const vault = yield* VaultDouble.makeWithDatabase({
        token: TOKEN,
        tls: pki.server,
        database: {
          roles: {
            "orders-api": {
              creationStatements: [
                `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE app`
              ],
              defaultTtlSeconds: 3600,
              maxTtlSeconds: 86_400
            }
          },
          execute: (sql) => server.query(sql)
        }
      })
      const env: Record<string, string> = {
        NODE_ENV: "production",
        DB_HOST: server.host,
        DB_PORT: String(server.port),
        DB_NAME: "app",
        DB_USER: "app",
        DB_SSL_CA: pki.ca.certPath,
        DB_POOL_MIN: "1",
        DB_POOL_MAX: "4",
        SECRETS_BACKEND: "vault",
        VAULT_ADDR: vault.address,
        VAULT_TOKEN: TOKEN,
        VAULT_PATH: "secret/takumi/production",
        VAULT_CACERT: pki.ca.certPath,
        VAULT_DB_ROLE: "orders-api"
      }
      const users = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all(
          Array.from({ length: 3 }, () => sql<{ readonly u: string }>`SELECT current_user AS u, pg_sleep(0.1)::text AS s`),
          { concurrency: "unbounded" }
        )).pipe(
          Effect.provide(TakumiDb.layer),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      const [lease] = yield* vault.database.leases
      assert.deepStrictEqual(users.flat().map((row) => row.u), [lease?.username, lease?.username, lease?.username])
      assert.deepStrictEqual(Option.map(lease?.ended ?? Option.none(), (end) => end.by), Option.some("revoke"))
      const left = yield* server.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [lease?.username])
      assert.strictEqual(left.length, 0)
    }).pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Error))))
})
