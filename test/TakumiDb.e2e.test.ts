/**
 * End to end: `TakumiDb.layer` exactly as a service runs it — configuration from the environment
 * (a ConfigProvider standing in for it), the secrets backend that SECRETS_BACKEND names, and the
 * secure client — against a real PostgreSQL with TLS and the Vault / Secrets Manager protocol
 * doubles (local servers speaking their wire formats; they are not Vault or AWS).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { TakumiDb } from "@takumi/db"
import { SecretsManagerDouble, TestDatabase, VaultDouble } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Tracer from "effect/Tracer"
import { inspect } from "node:util"
import { afterAll, beforeAll, vi } from "vitest"

const VAULT_PATH = "secret/takumi/production"
const TOKEN = "hvs.e2e-token-7f3a9c"
const FIRST_PASSWORD = "e2e-first-Pw-51c0a2"
const ROTATED_PASSWORD = "e2e-rotated-Pw-9d84be"

beforeAll(() => {
  // the AWS SDK's default credential chain; the Secrets Manager double does not check SigV4
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDE2EDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "e2e-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const withEnvironment = (env: Record<string, string>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const quiet = Logger.minimumLogLevel(LogLevel.Error)

/** A TLS server with an application role, and the production variables pointing at it. */
const productionSetup = Effect.gen(function*() {
  const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: FIRST_PASSWORD }], database: "app" })
  const vault = yield* VaultDouble.make({ token: TOKEN, tls: pki.server })
  yield* vault.put(VAULT_PATH, { DB_PASSWORD: FIRST_PASSWORD, DB_USER: "app" })
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
    VAULT_PATH,
    VAULT_CACERT: pki.ca.certPath
  }
  return { server, vault, env }
})

describe("TakumiDb end to end", () => {
  it.live("runs in production with the password from Vault (double) over verified TLS, one Vault read for many connections", () =>
    Effect.gen(function*() {
      const { env, vault } = yield* productionSetup
      const sessions = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // four concurrent sleepers force the pool to open more connections than the startup one
        return yield* Effect.all(
          Array.from({ length: 4 }, () =>
            sql<{ ssl: boolean; pid: number }>`
              SELECT s.ssl, s.pid FROM pg_stat_ssl s, pg_sleep(0.2) WHERE s.pid = pg_backend_pid()`),
          { concurrency: "unbounded" }
        )
      }).pipe(Effect.provide(TakumiDb.layer), withEnvironment(env))
      const rows = sessions.flat()
      assert.strictEqual(rows.length, 4)
      assert.isTrue(rows.every((row) => row.ssl))
      assert.strictEqual(new Set(rows.map((row) => row.pid)).size, 4)
      // every new connection asked for the password; the cache answered all but the first (the
      // credential-age check's metadata read, forked at startup, is not a read of the value)
      const valueReads = (yield* vault.requests).filter((request) =>
        request.path === VAULT_PATH && !request.url.includes("/metadata/")
      )
      assert.strictEqual(valueReads.length, 1)
    }).pipe(Effect.scoped, Effect.provide(quiet)))

  it.live("traces startup, the Vault read and statements with the database-client attributes, never a parameter value or secret", () =>
    Effect.gen(function*() {
      const { env, server } = yield* productionSetup
      const base = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const tracer = Tracer.make({
        span: (...args) => {
          const span = base.span(...args)
          spans.push(span)
          return span
        },
        context: base.context
      })
      const card = "4111111111111111"
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT ${card}::text AS card`).pipe(
        Effect.provide(TakumiDb.layer),
        withEnvironment(env),
        Effect.withTracer(tracer)
      )
      const named = (name: string) => spans.filter((span) => span.name === name)
      const database = {
        "db.system.name": "postgresql",
        "db.namespace": "app",
        "server.address": server.host,
        "server.port": server.port
      }
      const startup = named("SecureSqlClient.startup")[0]
      assert.isDefined(startup)
      assert.deepInclude(Object.fromEntries(startup?.attributes ?? []), database)
      assert.isAtLeast(named("SecretsBackend.vault.get").length, 1)
      const statement = named("sql.execute").find((span) => String(span.attributes.get("db.query.text")).includes("AS card"))
      assert.isDefined(statement)
      assert.deepInclude(Object.fromEntries(statement?.attributes ?? []), { ...database, "db.query.text": "SELECT $1::text AS card" })
      const everything = inspect(spans.map((span) => [span.name, Object.fromEntries(span.attributes)]), { depth: 5 })
      for (const secret of [card, FIRST_PASSWORD, TOKEN]) assert.notInclude(everything, secret)
    }).pipe(Effect.scoped, Effect.provide(quiet)))

  it.live("a rotated password (new Vault version + ALTER ROLE) reaches new connections with no failed query", () =>
    Effect.gen(function*() {
      const { env, server, vault } = yield* productionSetup
      const results = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`SELECT 1`
        // rotate: the server first, then the secret — the client still holds the old one in its cache
        yield* server.query(`ALTER ROLE app PASSWORD '${ROTATED_PASSWORD}'`)
        yield* vault.put(VAULT_PATH, { DB_PASSWORD: ROTATED_PASSWORD, DB_USER: "app" })
        // new connections: 28P01 with the cached password -> invalidate -> re-read Vault -> retry
        return yield* Effect.all(
          Array.from({ length: 4 }, () => sql<{ user: string }>`SELECT current_user AS user, pg_sleep(0.2)`),
          { concurrency: "unbounded" }
        )
      }).pipe(Effect.provide(TakumiDb.layer), withEnvironment(env))
      assert.deepStrictEqual(results.flat().map((row) => row.user), ["app", "app", "app", "app"])
      assert.isAtLeast(yield* vault.requestCount(), 2)
    }).pipe(Effect.scoped, Effect.provide(quiet)))

  it.live("refuses to start with SecretAccessDenied when the Vault token is revoked, before any connection", () =>
    Effect.gen(function*() {
      const { env, server, vault } = yield* productionSetup
      yield* vault.setToken("hvs.a-new-token")
      const error = yield* Effect.flip(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
          Effect.provide(TakumiDb.layer),
          withEnvironment(env)
        )
      )
      assert.strictEqual(error._tag, "SecretAccessDenied")
      assert.notInclude(error.message, TOKEN)
      const connections = yield* server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app'")
      assert.deepStrictEqual(connections, [{ n: 0 }])
    }).pipe(Effect.scoped, Effect.provide(quiet)))

  it.live("reads an RDS-style JSON secret from Secrets Manager (double) under takumi/<env>/DB_PASSWORD", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: FIRST_PASSWORD }] })
      const aws = yield* SecretsManagerDouble.make({ region: "eu-west-1" })
      yield* aws.putSecretString(
        "takumi/test/DB_PASSWORD",
        JSON.stringify({ username: "app", password: FIRST_PASSWORD, host: server.host, port: server.port })
      )
      const [row] = yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ user: string }>`SELECT current_user AS user`
      ).pipe(
        Effect.provide(TakumiDb.layer),
        // the double speaks plain HTTP, which only development and test accept
        withEnvironment({
          NODE_ENV: "test",
          DB_HOST: server.host,
          DB_PORT: String(server.port),
          DB_NAME: "postgres",
          DB_USER: "app",
          DB_SSL_CA: pki.ca.certPath,
          SECRETS_BACKEND: "aws-secrets-manager",
          AWS_REGION: "eu-west-1",
          AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.endpoint
        })
      )
      assert.deepStrictEqual(row, { user: "app" })
      // one value read (the credential-age check's DescribeSecret, forked at startup, is not one)
      const valueReads = (yield* aws.requests).filter((request) =>
        request.secretId === "takumi/test/DB_PASSWORD" && request.target.endsWith("GetSecretValue")
      )
      assert.strictEqual(valueReads.length, 1)
    }).pipe(Effect.scoped, Effect.provide(quiet)))
})
