/**
 * `npm start`: boots a throwaway PostgreSQL with TLS on 127.0.0.1 and a Vault protocol double
 * (a local HTTPS server speaking Vault's KV v2 wire format — not Vault), then runs the production
 * Takumi DB stack against them and prints what it verified. Finally it shows the typed refusals a
 * misconfigured deployment gets. Everything it starts is removed when it ends.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { DbConfig } from "@takumi/config"
import { DbHealth, DbMetrics, TakumiDb } from "@takumi/db"
import { BlackholeServer, TestDatabase, VaultDouble } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as LogLevel from "effect/LogLevel"
import { randomBytes } from "node:crypto"

const ok = (line: string) => Effect.sync(() => console.log(`  ✓ ${line}`))
const heading = (line: string) => Effect.sync(() => console.log(`\n${line}`))

/** Runs the whole stack under `env` (as if it were the process environment). */
const withEnvironment = (env: Record<string, string>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

/** Expects the stack to refuse `env`; prints the typed error it got. */
const expectRefusal = (what: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flip(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql`SELECT 1`
      }).pipe(Effect.provide(TakumiDb.layer), withEnvironment(env))
    ).pipe(Effect.either)
    if (outcome._tag === "Left") {
      return yield* Effect.dieMessage(`expected a refusal for: ${what}, but the stack started`)
    }
    const error = outcome.right
    const tag = "_tag" in error ? error._tag : "Error"
    yield* ok(`${what} -> ${tag}\n      ${error.message.split("\n").join("\n      ")}`)
  })

const demo = Effect.gen(function*() {
  yield* heading("Starting a throwaway PostgreSQL with TLS and a Vault protocol double ...")
  const password = randomBytes(18).toString("base64url")
  const { pki, server } = yield* TestDatabase.make({
    roles: [{ name: "takumi_app", password }],
    database: "takumi",
    server: { hba: [{ type: "hostssl", method: "scram-sha-256" }, { type: "hostnossl", method: "reject" }] }
  })
  const vaultToken = `hvs.${randomBytes(12).toString("hex")}`
  const vault = yield* VaultDouble.make({ token: vaultToken, tls: pki.server })
  yield* vault.put("secret/takumi/production", { DB_PASSWORD: password, DB_USER: "takumi_app" })
  yield* ok(`PostgreSQL ${server.host}:${server.port} (TLS with a test CA; pg_hba: hostssl scram-sha-256, hostnossl reject)`)
  yield* ok(`Vault double ${vault.address} holding secret/takumi/production (the password is never printed)`)

  const production: Record<string, string> = {
    NODE_ENV: "production",
    DB_HOST: server.host,
    DB_PORT: String(server.port),
    DB_NAME: "takumi",
    DB_USER: "takumi_app",
    DB_SSL: "true",
    DB_SSL_CA: pki.ca.certPath,
    SECRETS_BACKEND: "vault",
    VAULT_ADDR: vault.address,
    VAULT_TOKEN: vaultToken,
    VAULT_PATH: "secret/takumi/production",
    VAULT_CACERT: pki.ca.certPath,
    DB_APPLICATION_NAME: "takumi-demo"
  }

  yield* heading("Production stack (TakumiDb.layer) against it:")
  yield* Effect.gen(function*() {
    const config = yield* DbConfig
    yield* ok(`configuration validated, production policy passed (TLS ${config.tls.minVersion}+, certificate validation on, secrets from ${config.secrets.backend})`)
    const sql = yield* SqlClient.SqlClient
    const [session] = yield* sql<{
      user: string
      superuser: boolean
      ssl: boolean
      version: string
      cipher: string
      bits: number
      application: string
    }>`SELECT current_user AS user, r.rolsuper AS superuser, s.ssl, s.version, s.cipher, s.bits,
              current_setting('application_name') AS application
         FROM pg_stat_ssl s JOIN pg_roles r ON r.rolname = current_user
        WHERE s.pid = pg_backend_pid()`
    if (session === undefined) return yield* Effect.dieMessage("pg_stat_ssl has no row for this session")
    yield* ok(`password resolved from the Vault double and cached (${(yield* vault.requestCount()).toString()} Vault request so far)`)
    yield* ok(`server certificate verified against DB_SSL_CA; pg_stat_ssl: ssl=${session.ssl} ${session.version} ${session.cipher} (${session.bits} bits)`)
    yield* ok(`connected as ${session.user} (superuser: ${session.superuser}), application_name=${session.application}`)
    const health = yield* DbHealth.readiness
    yield* ok(`DbHealth: ${health.status}`)
    const handshakes = yield* Metric.value(DbMetrics.forServer(DbMetrics.tlsHandshake, server.host, server.port))
    const queries = yield* Metric.value(DbMetrics.forServer(DbMetrics.queryDuration, server.host, server.port))
    yield* ok(
      `DbMetrics: ${handshakes.count} TLS handshake(s), mean ${(1000 * handshakes.sum / handshakes.count).toFixed(1)} ms; ` +
        `${queries.count} statement(s) timed`
    )
  }).pipe(Effect.provide(TakumiDb.layer), withEnvironment(production))

  yield* heading("What a misconfigured deployment gets instead (typed errors, each with its fix):")
  yield* expectRefusal("DB_SSL=false in production", { ...production, DB_SSL: "false" })
  yield* expectRefusal("a CA that did not sign the server certificate", {
    ...production,
    DB_SSL_CA: pki.unknownCaRoot.certPath
  })
  yield* expectRefusal("a revoked Vault token", { ...production, VAULT_TOKEN: "hvs.revoked" })
  yield* server.reload({ certificate: pki.expired })
  yield* expectRefusal("a server presenting an expired certificate", production)
  yield* server.reload({ certificate: pki.server })
  const blackhole = yield* BlackholeServer.make
  yield* expectRefusal("a host that accepts TCP and never answers", {
    ...production,
    DB_HOST: blackhole.host,
    DB_PORT: String(blackhole.port)
  })
  yield* heading("Done: servers stopped, temporary files removed.")
})

Effect.runPromise(
  demo.pipe(
    Effect.scoped,
    // the library's own warnings still show; its debug lines do not
    Effect.provide(Layer.merge(Logger.pretty, Logger.minimumLogLevel(LogLevel.Warning)))
  )
).catch((error: unknown) => {
  console.error("demo failed:", error)
  process.exitCode = 1
})
