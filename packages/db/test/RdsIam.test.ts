/**
 * `SECRETS_BACKEND=rds-iam` against a real PostgreSQL 15 server. There is no RDS here, so this
 * proves the client's side only: with the signer's clock fixed (fake `Date`s) and fixed
 * credentials, an RDS IAM token is a known value; the test computes it independently, makes it the
 * role's password on the harness server, and SecureSqlClient must connect with the token its own
 * backend signed. What it cannot show: that RDS accepts the token (RDS checks the signature
 * against IAM; this server compares a SCRAM password), the `rds-db:connect` policy, the
 * `rds_iam` grant, or RDS's 15-minute expiry.
 */
import { Signer } from "@aws-sdk/rds-signer"
import { assert, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { testSettings } from "@takumi/config"
import { SecretsBackend } from "@takumi/secrets"
import { LeakGuard, TestDatabase } from "@takumi/testing"
import { afterAll, afterEach, beforeAll, vi } from "vitest"
import { SecureSqlClient, TakumiDb } from "../src/index.js"
import { configLayer, developmentVariables, makeLogCapture, makeSettings } from "./fixtures.js"

const ACCESS_KEY_ID = "AKIDRDSIAMTEST"
const SECRET_ACCESS_KEY = "rds-iam-test-secret-key-5d2c"
const SIGNED_AT = new Date("2026-12-02T12:00:00.000Z")
const REGION = "eu-west-1"

beforeAll(() => {
  // the SDK's default credential chain reads these
  vi.stubEnv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
  LeakGuard.registerUnsafe(SECRET_ACCESS_KEY, "rds-iam test AWS secret key")
})
afterAll(() => {
  vi.unstubAllEnvs()
})
afterEach(() => {
  vi.useRealTimers()
})

const database = TestDatabase.layer({ roles: [{ name: "app", password: "rds-iam-initial-Pw-08f1" }], database: "app" })

/** The token RDS would expect at `at`, signed with explicit credentials (not the default chain). */
const expectedToken = (server: { readonly host: string; readonly port: number }, at: Date) =>
  Effect.gen(function*() {
    vi.useFakeTimers({ toFake: ["Date"], now: at })
    const token = yield* Effect.promise(() =>
      new Signer({
        region: REGION,
        hostname: server.host,
        port: server.port,
        username: "app",
        credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }
      }).getAuthToken()
    )
    yield* LeakGuard.register(token, "rds-iam token (db test)")
    return token
  })

/** SecureSqlClient over verified TLS with the rds-iam backend; returns `SELECT current_user` and whether TLS was used. */
const connectAs = (env: Context.Tag.Service<TestDatabase.TestDatabase>) =>
  Effect.gen(function*() {
    const logs = yield* makeLogCapture
    const settings = makeSettings(env.server, env.pki, {
      secrets: {
        ...testSettings().secrets,
        backend: "rds-iam",
        aws: Option.some({ region: REGION, endpoint: Option.none(), maxAttempts: 1, caBundle: Option.none() })
      }
    })
    const secrets = Layer.scoped(SecretsBackend, SecretsBackend.makeRdsIam(settings))
    const rows = yield* Effect.flatMap(
      SqlClient.SqlClient,
      (sql) =>
        sql<{ user: string; ssl: boolean }>`
          SELECT current_user AS user, s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()`
    ).pipe(
      Effect.provide(SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets)))),
      Effect.provide(logs.layer),
      Effect.scoped
    )
    return { rows, logs }
  })

/** The variables a service would set, development, verified TLS to the harness server. */
const environment = (env: Context.Tag.Service<TestDatabase.TestDatabase>, overrides: Readonly<Record<string, string>>) => ({
  ...developmentVariables(env),
  SECRETS_BACKEND: "rds-iam",
  AWS_REGION: REGION,
  ...overrides
})

layer(database, { timeout: 60_000, excludeTestServices: true })("SecureSqlClient with SECRETS_BACKEND=rds-iam", (it) => {
  it.scoped("connects over verified TLS with the token it signed: the one computed for that instant, set as the role's password", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const token = yield* expectedToken(env.server, SIGNED_AT)
      yield* Effect.orDie(env.server.query(`ALTER ROLE app PASSWORD '${token}'`))
      const { logs, rows } = yield* connectAs(env)
      assert.deepStrictEqual(rows, [{ user: "app", ssl: true }])
      for (const line of yield* logs.lines) assert.notInclude(line.text, token)
    }))

  it.scoped("TakumiDb.layer takes SECRETS_BACKEND=rds-iam and AWS_REGION from the environment", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const token = yield* expectedToken(env.server, SIGNED_AT)
      yield* Effect.orDie(env.server.query(`ALTER ROLE app PASSWORD '${token}'`))
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ user: string }>`SELECT current_user AS user`).pipe(
        Effect.provide(TakumiDb.layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment(env, {})))))
      )
      assert.deepStrictEqual(rows, [{ user: "app" }])
    }))

  it.scoped("TakumiDb.layer refuses SECRETS_BACKEND=rds-iam without verified TLS even in development (rds-iam-tls)", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      for (const unsafe of [{ DB_SSL: "false" }, { DB_SSL_REJECT_UNAUTHORIZED: "false" }]) {
        const error = yield* Effect.flip(
          Effect.provide(Effect.void, TakumiDb.layer).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment(env, unsafe)))))
          )
        )
        assert.strictEqual(error._tag, "InsecureConfiguration")
        assert.include(error.message, "SECRETS_BACKEND=rds-iam")
      }
    }))

  it.scoped("is refused (AuthenticationFailed) when its token was signed at another instant: the server does check it", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const token = yield* expectedToken(env.server, SIGNED_AT)
      yield* Effect.orDie(env.server.query(`ALTER ROLE app PASSWORD '${token}'`))
      // one second later the signature, and so the token, differ
      vi.setSystemTime(new Date(SIGNED_AT.getTime() + 1000))
      const error = yield* Effect.flip(connectAs(env))
      assert.strictEqual(error._tag, "AuthenticationFailed")
    }))
})
