/**
 * `takumi-db doctor` through the command line: offline against a configuration map (the
 * production policy), online against a real PostgreSQL server with TLS (`PgTestServer`,
 * `TestPki`) through the whole secure stack.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type PgTestServer, TestDatabase, type TestPki, VaultDouble } from "@takumi/testing"
import { errorTag, productionRefused, runCli } from "./fixtures.js"

const PASSWORD = "doctor-Pa55word-7be21f"
const ADMIN_PASSWORD = "doctor-Adm1n-Pa55-4c9d"
const VAULT_TOKEN = "hvs.doctor-test-token-5f2e"

const production = productionRefused(PASSWORD)

describe("Doctor offline", () => {
  it.effect("lists the production refusal with its fix and exits 1", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["doctor", "--offline"], production)
      assert.strictEqual(run.exitCode, 1)
      assert.deepStrictEqual(errorTag(run), Option.some("DoctorRefused"))
      expect(run.stdout).toMatch(/REFUSE tls-required \(DB_SSL\): CRITICAL SECURITY ERROR.*Set DB_SSL=true/)
      // every other refusal is listed with its own fix, not only the first
      expect(run.stdout).toMatch(/REFUSE secrets-backend-env \(SECRETS_BACKEND\): .*aws-secrets-manager/)
      expect(run.stdout).toMatch(/REFUSE password-in-environment \(DB_PASSWORD\): /)
      assert.include(run.stdout, "Result: REFUSED")
    }))

  it.effect("never prints the password, even when the policy refuses it", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["doctor", "--offline"], production)
      assert.notInclude(run.stdout, PASSWORD)
      assert.notInclude(run.stderr, PASSWORD)
    }))

  it.effect("lists each relaxation development allows as a warning and exits 0", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["doctor", "--offline"], {
        ...production,
        NODE_ENV: "development",
        DB_HOST: "127.0.0.1"
      })
      assert.strictEqual(run.exitCode, 0)
      assert.include(run.stdout, "warn   tls-required (DB_SSL)")
      assert.include(run.stdout, "warn   secrets-backend-env (SECRETS_BACKEND)")
      assert.include(run.stdout, "skipped (--offline)")
      assert.notInclude(run.stdout, PASSWORD)
    }))

  it.effect("says behind DB_POOLER=pgbouncer that the verified tls line is PgBouncer's leg to the server", () =>
    Effect.gen(function*() {
      const direct = yield* runCli(["doctor", "--offline"], { ...production, NODE_ENV: "development" })
      assert.notInclude(direct.stdout, "pooler")
      const run = yield* runCli(["doctor", "--offline"], { ...production, NODE_ENV: "development", DB_POOLER: "pgbouncer" })
      assert.include(run.stdout, "pooler     pgbouncer (transaction pooling)")
      assert.include(run.stdout, "pg_stat_ssl, i.e. PgBouncer's leg to PostgreSQL")
    }))

  it.effect("reports every invalid variable and exits 1", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["doctor", "--offline"], { ...production, DB_PORT: "70000", DB_SSL: "yes" })
      assert.strictEqual(run.exitCode, 1)
      assert.include(run.stdout, "INVALID DB_PORT")
      assert.include(run.stdout, "INVALID DB_SSL")
    }))
})

class Env extends Context.Tag("cli-test/DoctorEnv")<Env, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  /** a Vault KV v2 protocol double (a local HTTPS server, not Vault) holding both roles' passwords */
  readonly vault: VaultDouble.VaultDouble
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({
      roles: [
        { name: "app", password: PASSWORD },
        { name: "admin", password: ADMIN_PASSWORD, superuser: true },
        { name: "rls", password: PASSWORD }
      ],
      database: "app"
    })
    yield* server.query("ALTER ROLE rls BYPASSRLS CREATEDB")
    const vault = yield* VaultDouble.make({ token: VAULT_TOKEN, tls: pki.server })
    yield* vault.put("secret/takumi/production", { DB_PASSWORD: PASSWORD })
    yield* vault.put("secret/takumi/production/admin", { DB_PASSWORD: ADMIN_PASSWORD })
    return { pki, server, vault }
  }).pipe(Effect.orDie)
)

const development = (env: Context.Tag.Service<Env>, extra: Record<string, string> = {}) => ({
  NODE_ENV: "development",
  DB_HOST: env.server.host,
  DB_PORT: String(env.server.port),
  DB_NAME: "app",
  DB_USER: "app",
  DB_SSL_CA: env.pki.ca.certPath,
  DB_SSL_MIN_VERSION: "TLSv1.3",
  SECRETS_BACKEND: "env",
  DB_PASSWORD: PASSWORD,
  ...extra
})

/** Production: passwords from the Vault double over verified TLS, no password in the environment. */
const productionOnline = (env: Context.Tag.Service<Env>, extra: Record<string, string> = {}) => ({
  NODE_ENV: "production",
  DB_HOST: env.server.host,
  DB_PORT: String(env.server.port),
  DB_NAME: "app",
  DB_USER: "app",
  DB_SSL_CA: env.pki.ca.certPath,
  SECRETS_BACKEND: "vault",
  VAULT_ADDR: env.vault.address,
  VAULT_TOKEN,
  VAULT_PATH: "secret/takumi/production",
  VAULT_CACERT: env.pki.ca.certPath,
  ...extra
})

layer(EnvLive, { timeout: 60_000, excludeTestServices: true })("Doctor online", (it) => {
  it.effect("reports TLS 1.3, a strong cipher, the certificate's validity and a non-superuser role", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      expect(run.stdout).toMatch(/tls {10}TLSv1\.3, cipher TLS_(AES_256_GCM_SHA384|AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)/)
      expect(run.stdout).toMatch(/certificate {2}.*valid until \d{4}-\d\d-\d\dT.* \((36[45]|366) days\)/)
      assert.include(run.stdout, `verified     127.0.0.1:${env.server.port}, database app as app`)
      assert.include(run.stdout, "role         app is not a superuser")
      assert.include(run.stdout, "Result: OK")
      assert.notInclude(run.stdout + run.stderr, PASSWORD)
    }))

  it.effect("warns about a superuser role in development, naming the fix", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env, { DB_USER: "admin", DB_PASSWORD: ADMIN_PASSWORD }))
      assert.strictEqual(run.exitCode, 0)
      assert.include(run.stdout, "role         admin is a SUPERUSER")
      expect(run.stdout).toMatch(/warn {9}SuperuserRole: .*least-privilege role/)
      assert.notInclude(run.stdout + run.stderr, ADMIN_PASSWORD)
    }))

  it.effect("lists the role's privileges beyond its grants: the database owner's, and BYPASSRLS as refused in production", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const owner = yield* runCli(["doctor"], development(env))
      assert.strictEqual(owner.exitCode, 0, owner.stdout + owner.stderr)
      expect(owner.stdout).toMatch(/privilege {4}DatabaseOwner: .*owns the database.*\(warned about in production\)/)
      const rls = yield* runCli(["doctor"], development(env, { DB_USER: "rls" }))
      assert.strictEqual(rls.exitCode, 0, rls.stdout + rls.stderr)
      expect(rls.stdout).toMatch(/privilege {4}BypassRlsRole: .*BYPASSRLS.*\(REFUSED in production\)/)
      expect(rls.stdout).toMatch(/privilege {4}CreateDatabasePrivilege: .*CREATEDB/)
      assert.notInclude(rls.stdout, "DatabaseOwner")
      const json = yield* runCli(["doctor", "--json"], development(env, { DB_USER: "rls" }))
      const parsed: { connection: { posture: { privileges: ReadonlyArray<{ rule: string; refused: boolean }> } } } =
        JSON.parse(json.stdout)
      expect(parsed.connection.posture.privileges.map((p) => [p.rule, p.refused])).toEqual([
        ["BypassRlsRole", true],
        ["CreateDatabasePrivilege", false]
      ])
    }))

  it.effect("shows the certificate-expiry alert when the certificate expires within the alert window", () =>
    Effect.gen(function*() {
      const env = yield* Env
      // the test certificate is valid for a year; a ten-year window makes it "expiring"
      const run = yield* runCli(["doctor"], development(env, { DB_ALERT_CERT_EXPIRY_DAYS: "3650" }))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      expect(run.stdout).toMatch(/warn {9}CertificateExpiring\w*: .*expires/)
    }))

  it.effect("reports the typed startup error with its fix and exits 1 when the password is wrong", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env, { DB_PASSWORD: "not-the-password" }))
      assert.strictEqual(run.exitCode, 1)
      expect(run.stdout).toMatch(/FAILED AuthenticationFailed: .*DB_USER/)
      assert.notInclude(run.stdout + run.stderr, "not-the-password")
    }))

  it.effect("reports an untrusted server certificate as CertificateUntrusted", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env, { DB_SSL_CA: env.pki.unknownCaRoot.certPath }))
      assert.strictEqual(run.exitCode, 1)
      assert.include(run.stdout, "FAILED CertificateUntrusted")
      assert.include(run.stdout, "DB_SSL_CA")
    }))

  it.effect("in production reports the verified posture with the password from Vault, printing neither it nor the token", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], productionOnline(env))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      assert.include(run.stdout, "Security policy\n  no findings")
      assert.include(run.stdout, `vault ${env.vault.address}, path secret/takumi/production`)
      expect(run.stdout).toMatch(/tls {10}TLSv1\.3, cipher TLS_/)
      assert.notInclude(run.stdout + run.stderr, PASSWORD)
      assert.notInclude(run.stdout + run.stderr, VAULT_TOKEN)
    }))

  it.effect("in production reports a superuser role as the InsecureServer startup error and exits 1", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(
        ["doctor"],
        productionOnline(env, { DB_USER: "admin", VAULT_PATH: "secret/takumi/production/admin" })
      )
      assert.strictEqual(run.exitCode, 1)
      expect(run.stdout).toMatch(/FAILED InsecureServer: Refusing .* in production: SuperuserRole/)
      assert.notInclude(run.stdout + run.stderr, ADMIN_PASSWORD)
    }))
})
