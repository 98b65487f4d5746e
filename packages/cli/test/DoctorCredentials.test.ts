/**
 * `takumi-db doctor`'s credential checks through the command line, against a real PostgreSQL
 * server (`PgTestServer`, TLS) with the password in the Vault double (read by the real
 * node-vault) or the Secrets Manager double (read by the real AWS SDK), in production and
 * development: the secret's age and rotation, and `--compare-environment <other>`.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Crypto from "node:crypto"
import { afterAll, beforeAll, vi } from "vitest"
import { type PgTestServer, SecretsManagerDouble, TestDatabase, type TestPki, VaultDouble } from "@takumi/testing"
import { type CliRun, runCli } from "./fixtures.js"

const PASSWORD = "doctor-cred-Pa55word-91ae"
const OTHER_PASSWORD = "doctor-cred-Other-Pa55-27c4"
const VAULT_TOKEN = "hvs.doctor-credentials-token-8d1b"
const day = 86_400_000

// The real SDK signs every request with credentials from its default chain; the double does not check them.
beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

class Env extends Context.Tag("cli-test/DoctorCredentialsEnv")<Env, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  readonly vault: VaultDouble.VaultDouble
  readonly aws: SecretsManagerDouble.SecretsManagerDouble
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: PASSWORD }], database: "app" })
    const vault = yield* VaultDouble.make({ token: VAULT_TOKEN, tls: pki.server })
    const aws = yield* SecretsManagerDouble.make({ tls: pki.server })
    return { pki, server, vault, aws }
  }).pipe(Effect.orDie)
)

const database = (env: Context.Tag.Service<Env>, environment: string) => ({
  NODE_ENV: environment,
  DB_HOST: env.server.host,
  DB_PORT: String(env.server.port),
  DB_NAME: "app",
  DB_USER: "app",
  DB_SSL_CA: env.pki.ca.certPath
})

const withVault = (env: Context.Tag.Service<Env>, path: string, environment = "production") => ({
  ...database(env, environment),
  SECRETS_BACKEND: "vault",
  VAULT_ADDR: env.vault.address,
  VAULT_TOKEN,
  VAULT_PATH: path,
  VAULT_CACERT: env.pki.ca.certPath
})

const withAws = (env: Context.Tag.Service<Env>, prefix: string, environment: string) => ({
  ...database(env, environment),
  SECRETS_BACKEND: "aws-secrets-manager",
  SECRETS_PREFIX: prefix,
  AWS_REGION: "us-east-1",
  AWS_ENDPOINT_URL_SECRETS_MANAGER: env.aws.endpoint,
  AWS_CA_BUNDLE: env.pki.ca.certPath
})

const sha256 = (text: string) => Crypto.createHash("sha256").update(text, "utf8").digest()

/** Neither password, nor its SHA-256 digest in any usual spelling, nor the Vault token. */
const expectNoSecret = (run: CliRun) => {
  const output = run.stdout + run.stderr
  for (const password of [PASSWORD, OTHER_PASSWORD]) {
    assert.notInclude(output, password)
    assert.notInclude(output, sha256(password).toString("hex"))
    assert.notInclude(output, sha256(password).toString("base64"))
  }
  assert.notInclude(output, VAULT_TOKEN)
}

interface CredentialJson {
  readonly credential: Record<string, unknown>
  readonly comparison: Record<string, unknown> | null
  readonly problems: ReadonlyArray<string>
}

const parsed = (run: CliRun): CredentialJson => JSON.parse(run.stdout)

layer(EnvLive, { timeout: 90_000, excludeTestServices: true })("Doctor credential checks", (it) => {
  it.effect("production, Vault: shows the secret's age from the KV v2 metadata, OVERDUE past DB_CREDENTIAL_MAX_AGE, and that KV cannot tell rotation", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/takumi/production/age"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      const setAt = new Date(Date.now() - 120 * day)
      yield* env.vault.setCurrentVersionTime(path, setAt)
      const run = yield* runCli(["doctor"], withVault(env, path))
      // overdue is an alert, not a refusal: the program would start
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      assert.include(run.stdout, `Credential\n  secret       ${path} (vault, version 1)`)
      assert.include(
        run.stdout,
        `  age          set ${setAt.toISOString()}, 120 days ago (DB_CREDENTIAL_MAX_AGE 90 days): OVERDUE, rotate it`
      )
      assert.include(run.stdout, "  rotation     not told (Vault KV has no rotation schedule")
      const json = parsed(yield* runCli(["doctor", "--json"], withVault(env, path)))
      expect(json.credential).toEqual({
        status: "read",
        backend: "vault",
        secret: path,
        versionId: "1",
        setAt: setAt.toISOString(),
        ageDays: 120,
        maxAgeDays: 90,
        overdue: true,
        rotationEnabled: null
      })
      expect(json.comparison).toBeNull()
      expectNoSecret(run)
    }))

  it.effect("production, Vault without metadata read: says so with the policy that grants it, and the program still starts", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/takumi/production/nometa"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      yield* env.vault.denyMetadata(path)
      const run = yield* runCli(["doctor"], withVault(env, path))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      expect(run.stdout).toMatch(
        /age {10}not readable \(SecretAccessDenied\): .*secret\/metadata\/takumi\/production\/nometa.*"read"/
      )
      assert.include(run.stdout, "Result: OK")
    }))

  it.effect("production, Vault: --compare-environment staging reads secret/takumi/staging/<same>, reports different passwords and both versions", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/takumi/production/cmp"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      yield* env.vault.put("secret/takumi/staging/cmp", { DB_PASSWORD: "an-older-one" })
      yield* env.vault.put("secret/takumi/staging/cmp", { DB_PASSWORD: OTHER_PASSWORD })
      const run = yield* runCli(["doctor", "--compare-environment", "staging"], withVault(env, path))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      assert.include(
        run.stdout,
        "  different    production (secret/takumi/production/cmp, version 1) and staging (secret/takumi/staging/cmp, version 2) " +
          "hold different passwords"
      )
      const json = parsed(yield* runCli(["doctor", "--json", "--compare-environment", "staging"], withVault(env, path)))
      expect(json.comparison).toEqual({
        status: "different",
        environment: "production",
        other: "staging",
        secret: path,
        otherSecret: "secret/takumi/staging/cmp",
        versionId: "1",
        otherVersionId: "2"
      })
      expectNoSecret(run)
    }))

  it.effect("production, Vault: the same password in staging is SHARED, listed as a problem, exit 1, printing neither", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/takumi/production/shared"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      yield* env.vault.put("secret/takumi/staging/shared", { DB_PASSWORD: PASSWORD })
      const run = yield* runCli(["doctor", "--compare-environment", "staging"], withVault(env, path))
      assert.strictEqual(run.exitCode, 1, run.stdout + run.stderr)
      assert.include(run.stdout, "  SHARED       production (secret/takumi/production/shared, version 1) and staging")
      assert.include(run.stdout, "Result: PROBLEM")
      assert.include(run.stderr, "1 problem(s) found by --compare-environment")
      assert.include(run.stderr, "SharedCredential: production and staging use the same database password")
      expectNoSecret(run)
    }))

  it.effect("production, Vault: a staging secret that is not there fails the comparison with the backend's fix, exit 1", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/takumi/production/lonely"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      const run = yield* runCli(["doctor", "--compare-environment", "staging"], withVault(env, path))
      assert.strictEqual(run.exitCode, 1, run.stdout + run.stderr)
      expect(run.stdout).toMatch(/FAILED {7}SecretNotFound: .*secret\/data\/takumi\/staging\/lonely/)
    }))

  it.effect("a location that does not name the environment as one segment: the comparison says it cannot derive the other's", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const path = "secret/prod-db"
      yield* env.vault.put(path, { DB_PASSWORD: PASSWORD })
      const run = yield* runCli(["doctor", "--compare-environment", "staging"], withVault(env, path))
      assert.strictEqual(run.exitCode, 1, run.stdout + run.stderr)
      assert.include(run.stdout, "FAILED       VAULT_PATH \"secret/prod-db\" does not name the environment \"production\"")
    }))

  it.effect.each(["production", "development"] as const)(
    "%s, Secrets Manager: shows the age from DescribeSecret and whether rotation is on; --compare-environment finds a shared password",
    (environment) =>
      Effect.gen(function*() {
        const env = yield* Env
        const other = environment === "production" ? "staging" : "test"
        const prefix = `takumi/${environment}/${environment}-aws/`
        const secretId = `${prefix}DB_PASSWORD`
        const otherId = `takumi/${other}/${environment}-aws/DB_PASSWORD`
        const versionId = yield* env.aws.putSecretString(secretId, PASSWORD)
        const otherVersionId = yield* env.aws.putSecretString(otherId, PASSWORD)
        const rotated = new Date(Math.floor((Date.now() - 30 * day) / 1000) * 1000)
        yield* env.aws.setRotation(secretId, { enabled: true, lastRotated: rotated })
        const run = yield* runCli(["doctor", "--compare-environment", other], withAws(env, prefix, environment))
        assert.strictEqual(run.exitCode, 1, run.stdout + run.stderr)
        assert.include(run.stdout, `  secret       ${secretId} (aws-secrets-manager, version ${versionId})`)
        assert.include(run.stdout, `  age          set ${rotated.toISOString()}, 30 days ago (DB_CREDENTIAL_MAX_AGE 90 days)\n`)
        assert.include(run.stdout, "  rotation     automatic rotation on")
        assert.include(
          run.stdout,
          `  SHARED       ${environment} (${secretId}, version ${versionId}) and ${other} (${otherId}, version ${otherVersionId})`
        )
        const json = parsed(yield* runCli(["doctor", "--json", "--compare-environment", other], withAws(env, prefix, environment)))
        expect(json.credential).toMatchObject({ status: "read", overdue: false, rotationEnabled: true, ageDays: 30 })
        expect(json.comparison).toMatchObject({ status: "equal", versionId, otherVersionId })
        expectNoSecret(run)
      })
  )

  it.effect("development, env backend: the age is not told (exempt), and --compare-environment says the env backend cannot tell", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const variables = { ...database(env, "development"), SECRETS_BACKEND: "env", DB_PASSWORD: PASSWORD }
      const run = yield* runCli(["doctor", "--compare-environment", "production"], variables)
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      assert.include(run.stdout, "  age          not told by the env backend (exempt from CredentialRotationOverdue)")
      assert.include(run.stdout, "  cannot tell  the env backend reads DB_PASSWORD from this process's environment only")
      const json = parsed(yield* runCli(["doctor", "--json", "--compare-environment", "production"], variables))
      expect(json.credential).toEqual({ status: "not-told", backend: "env" })
      expect(json.comparison).toMatchObject({ status: "cannot-tell", other: "production" })
      expectNoSecret(run)
    }))

  it.effect("offline: neither check contacts the backend", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const before = yield* env.vault.requestCount()
      const run = yield* runCli(["doctor", "--offline", "--compare-environment", "staging"], withVault(env, "secret/takumi/production/off"))
      assert.strictEqual(run.exitCode, 0, run.stdout + run.stderr)
      assert.include(run.stdout, "Credential\n  skipped (--offline)")
      assert.include(run.stdout, "Credentials across environments (--compare-environment staging)\n  skipped (--offline)")
      assert.strictEqual(yield* env.vault.requestCount(), before)
    }))
})
