/**
 * CredentialRotationOverdue: the credential-age rule on TestClock (startup, daily, exempt
 * backends, a missing metadata permission said once), then SecureSqlClient.layer against a real
 * PostgreSQL 15 server (PgTestServer, TLS) with its password in the Vault double (read by the real
 * node-vault) or the Secrets Manager double (read by the real AWS SDK), in production and development.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { afterAll, beforeAll, vi } from "vitest"
import type { DbSettings, Environment } from "@takumi/config"
import { SecretAccessDenied, type SecretError, type SecretMetadata, SecretsBackend, SecretsBackendUnavailable } from "@takumi/secrets"
import { SecretsManagerDouble, TestDatabase, VaultDouble } from "@takumi/testing"
import * as CredentialAge from "../src/internal/credentialAge.js"
import { SecureSqlClient, SecurityAlerts } from "../src/index.js"
import { configLayer, makeLogCapture, makeSettings, reloadFrom, tlsBaseline } from "./fixtures.js"

const day = 86_400_000
const APP_PASSWORD = "app-Pa55word-rotation-5b21"

const vaultMetadata = (changedAt: Date): SecretMetadata.SecretMetadata => ({
  backend: "vault",
  secret: "secret/takumi/production",
  changedAt: Option.some(changedAt),
  rotatedAt: Option.none(),
  rotationEnabled: Option.none(),
  versionId: Option.some("3")
})

const awsMetadata = (rotatedAt: Date, rotationEnabled: boolean): SecretMetadata.SecretMetadata => ({
  backend: "aws-secrets-manager",
  secret: "takumi/production/DB_PASSWORD",
  changedAt: Option.some(new Date(rotatedAt.getTime() + 5 * day)),
  rotatedAt: Option.some(rotatedAt),
  rotationEnabled: Option.some(rotationEnabled),
  versionId: Option.some("v-current")
})

/** A backend whose `describe` answers what the test says and counts the calls. */
const backendDescribing = (
  describe: () => Effect.Effect<Option.Option<SecretMetadata.SecretMetadata>, SecretError>
) => {
  let calls = 0
  const service: SecretsBackend["Type"] = {
    get: () => Effect.succeed(Redacted.make("unused")),
    invalidate: () => Effect.void,
    describe: () => Effect.suspend(() => {
      calls++
      return describe()
    })
  }
  return { service, calls: () => calls }
}

const unitSettings = (maxAgeDays = 90): DbSettings => {
  const base = makeSettings({ host: "db.internal", port: 5432 }, { ca: { certPath: "/nonexistent/ca.pem" } })
  return { ...base, alerts: { ...base.alerts, credentialMaxAge: Duration.days(maxAgeDays) } }
}

/** Starts the watch at TestClock time `now` and returns the alerts raised so far on demand. */
const watching = (backend: SecretsBackend["Type"], settings = unitSettings(), now = 1000 * day) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(now)
    const alerts = yield* SecurityAlerts.make
    const subscription = yield* alerts.subscribe
    yield* CredentialAge.watch(settings, alerts).pipe(Effect.provideService(SecretsBackend, backend))
    // let the forked check run its startup round
    yield* TestClock.adjust(0)
    const received = Effect.map(Queue.takeAll(subscription), Chunk.toReadonlyArray)
    return { received }
  })

describe("CredentialRotationOverdue (rules, TestClock)", () => {
  it.scoped("raises it at startup for a Vault secret whose current version is older than DB_CREDENTIAL_MAX_AGE", () =>
    Effect.gen(function*() {
      const now = 1000 * day
      const backend = backendDescribing(() => Effect.succeed(Option.some(vaultMetadata(new Date(now - 120 * day)))))
      const { received } = yield* watching(backend.service, unitSettings(), now)
      const [alert, ...rest] = yield* received
      expect(rest).toEqual([])
      assert(alert?._tag === "CredentialRotationOverdue")
      expect(alert).toMatchObject({
        backend: "vault",
        secret: "secret/takumi/production",
        key: "DB_PASSWORD",
        ageDays: 120,
        maxAgeDays: 90,
        setAt: new Date(now - 120 * day).toISOString()
      })
      expect(alert.rotationEnabled).toBeUndefined()
      expect(alert.message).toContain("vault kv patch secret/takumi/production DB_PASSWORD=")
    }))

  it.scoped("raises nothing for a younger credential, then raises it on the first daily check past the max age, and again each day", () =>
    Effect.gen(function*() {
      const now = 1000 * day
      const backend = backendDescribing(() => Effect.succeed(Option.some(vaultMetadata(new Date(now - 89.5 * day)))))
      const { received } = yield* watching(backend.service, unitSettings(), now)
      expect(yield* received).toEqual([])
      expect(backend.calls()).toBe(1)
      yield* TestClock.adjust(Duration.days(1))
      const [first] = yield* received
      expect(first).toMatchObject({ _tag: "CredentialRotationOverdue", ageDays: 90 })
      expect(backend.calls()).toBe(2)
      yield* TestClock.adjust(Duration.days(1))
      expect(yield* received).toMatchObject([{ _tag: "CredentialRotationOverdue", ageDays: 91 }])
    }))

  it.scoped("follows DB_CREDENTIAL_MAX_AGE", () =>
    Effect.gen(function*() {
      const now = 1000 * day
      const backend = backendDescribing(() => Effect.succeed(Option.some(vaultMetadata(new Date(now - 40 * day)))))
      const { received } = yield* watching(backend.service, unitSettings(30), now)
      expect(yield* received).toMatchObject([{ _tag: "CredentialRotationOverdue", ageDays: 40, maxAgeDays: 30 }])
    }))

  it("Secrets Manager: counts from LastRotatedDate and says whether rotation is on", () => {
      const now = 1000 * day
      const on = CredentialAge.overdue(awsMetadata(new Date(now - 95 * day), true), now, Duration.days(90))
      const off = CredentialAge.overdue(awsMetadata(new Date(now - 95 * day), false), now, Duration.days(90))
      expect(Option.map(on, (alert) => alert.ageDays)).toEqual(Option.some(95))
      expect(Option.getOrThrow(on).rotationEnabled).toBe(true)
      expect(Option.getOrThrow(on).message).toContain("automatic rotation is on but has not completed")
      expect(Option.getOrThrow(off).message).toContain(
        "aws secretsmanager rotate-secret --secret-id takumi/production/DB_PASSWORD --rotation-rules AutomaticallyAfterDays=90"
      )
      // the later LastChangedDate (90 days ago: a tag edited) does not make the credential younger
      expect(Option.isSome(CredentialAge.overdue(awsMetadata(new Date(now - 95 * day), true), now, Duration.days(91)))).toBe(true)
    })

  it.scoped("exempts a backend that cannot tell (env, test, dynamic credentials): no alert, no log line", () =>
    Effect.gen(function*() {
      const logs = yield* makeLogCapture
      const backend = backendDescribing(() => Effect.succeed(Option.none()))
      const { received } = yield* watching(backend.service).pipe(Effect.provide(logs.layer))
      yield* TestClock.adjust(Duration.days(2))
      expect(yield* received).toEqual([])
      expect(backend.calls()).toBe(3)
      expect((yield* logs.lines).filter((line) => line.text.includes("credential-age"))).toEqual([])
    }))

  it.scoped("without permission to read metadata, says so once at INFO naming the permission, not repeated by the daily checks", () =>
    Effect.gen(function*() {
      const logs = yield* makeLogCapture
      const denied = new SecretAccessDenied({
        backend: "aws-secrets-manager",
        key: "DB_PASSWORD",
        message: "AWS Secrets Manager refused DescribeSecret for \"takumi/production/DB_PASSWORD\" (DB_PASSWORD), so its age " +
          "cannot be read. Fix: grant secretsmanager:DescribeSecret on arn:aws:secretsmanager:<region>:<account>:secret:takumi/production/DB_PASSWORD*."
      })
      const backend = backendDescribing(() => Effect.fail(denied))
      const { received } = yield* watching(backend.service).pipe(Effect.provide(logs.layer))
      yield* TestClock.adjust(Duration.days(3))
      expect(backend.calls()).toBe(4)
      expect(yield* received).toEqual([])
      const lines = (yield* logs.lines).filter((line) => line.text.includes("credential-age"))
      expect(lines).toHaveLength(1)
      expect(lines[0]?.level).toBe("INFO")
      expect(lines[0]?.text).toContain("secretsmanager:DescribeSecret")
    }))

  it.scoped("a backend outage is one INFO line per check, and the next day's check raises the alert", () =>
    Effect.gen(function*() {
      const logs = yield* makeLogCapture
      const now = 1000 * day
      let down = true
      const backend = backendDescribing(() =>
        down
          ? Effect.fail(new SecretsBackendUnavailable({ backend: "vault", key: "DB_PASSWORD", message: "Vault is sealed" }))
          : Effect.succeed(Option.some(vaultMetadata(new Date(now - 100 * day))))
      )
      const { received } = yield* watching(backend.service, unitSettings(), now).pipe(Effect.provide(logs.layer))
      expect(yield* received).toEqual([])
      down = false
      yield* TestClock.adjust(Duration.days(1))
      expect(yield* received).toMatchObject([{ _tag: "CredentialRotationOverdue", ageDays: 101 }])
      const lines = (yield* logs.lines).filter((line) => line.text.includes("credential-age"))
      expect(lines.map((line) => line.level)).toEqual(["INFO"])
    }))
})

// The real SDK signs every request; the double does not check signatures.
beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })
const configure = reloadFrom(tlsBaseline)
const vaultToken = "hvs.rotation-test-token"

/** Builds SecureSqlClient.layer over the backend the settings name, subscribed to its alerts. */
const client = (settings: DbSettings) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      SecureSqlClient.layer.pipe(Layer.provide(SecretsBackend.layerFromConfig), Layer.provide(configLayer(settings)))
    ).pipe(Effect.orDie)
    return yield* Context.get(context, SecurityAlerts.SecurityAlerts).subscribe
  })

const nextOverdue = (subscription: Queue.Dequeue<SecurityAlerts.SecurityAlert>): Effect.Effect<SecurityAlerts.CredentialRotationOverdue> =>
  Effect.flatMap(Queue.take(subscription), (alert) =>
    alert._tag === "CredentialRotationOverdue" ? Effect.succeed(alert) : nextOverdue(subscription))

/** The settings of `environment` against the fixture's server, the password in the Vault double at `path`. */
const withVault = (environment: Environment, ageDays: number) =>
  Effect.gen(function*() {
    const { pki, server } = yield* configure()
    const path = `secret/takumi/${environment}`
    const double = yield* VaultDouble.make({ token: vaultToken, tls: { certPem: pki.server.certPem, keyPem: pki.server.keyPem } })
    yield* double.put(path, { DB_PASSWORD: APP_PASSWORD })
    yield* double.setCurrentVersionTime(path, new Date(Date.now() - ageDays * day))
    const base = makeSettings(server, pki, { environment })
    const settings: DbSettings = {
      ...base,
      secrets: {
        ...base.secrets,
        backend: "vault",
        vault: Option.some({
          address: double.address,
          auth: { method: "token", token: Redacted.make(vaultToken) },
          path,
          namespace: Option.none(),
          caCert: Option.some({ _tag: "File", path: pki.ca.certPath }),
          redirectHosts: [],
          database: Option.none()
        })
      }
    }
    return { double, path, settings }
  })

const withAws = (environment: Environment, options: { readonly deny: boolean }) =>
  Effect.gen(function*() {
    const { pki, server } = yield* configure()
    const double = yield* SecretsManagerDouble.make()
    const secretId = `takumi/${environment}/DB_PASSWORD`
    yield* double.putSecretString(secretId, APP_PASSWORD)
    yield* double.setRotation(secretId, { enabled: false, currentCreated: new Date(Date.now() - 200 * day) })
    if (options.deny) yield* double.denyDescribe(secretId)
    const base = makeSettings(server, pki, { environment })
    const settings: DbSettings = {
      ...base,
      secrets: {
        ...base.secrets,
        backend: "aws-secrets-manager",
        prefix: `takumi/${environment}/`,
        aws: Option.some({ region: "us-east-1", endpoint: Option.some(double.endpoint), maxAttempts: 1, caBundle: Option.none() })
      }
    }
    return { double, secretId, settings }
  })

layer(database, { timeout: 60_000, excludeTestServices: true })("CredentialRotationOverdue with SecureSqlClient", (it) => {
  it.scoped.each(["production", "development"] as const)(
    "%s: a Vault KV v2 password written 120 days ago raises it at startup (node-vault, the Vault double's metadata)",
    (environment) =>
      Effect.gen(function*() {
        const { double, path, settings } = yield* withVault(environment, 120)
        const alert = yield* nextOverdue(yield* client(settings))
        expect(alert).toMatchObject({ backend: "vault", secret: path, key: "DB_PASSWORD", ageDays: 120, maxAgeDays: 90 })
        const urls = (yield* double.requests).map((request) => request.url)
        expect(urls).toContain(`/v1/secret/metadata/takumi/${environment}`)
      })
  )

  it.scoped("a Vault password written 10 days ago raises nothing (the check ran: its DEBUG verdict)", () =>
    Effect.gen(function*() {
      const { double, settings } = yield* withVault("production", 10)
      const logs = yield* makeLogCapture
      const subscription = yield* client(settings).pipe(
        Effect.provide(Layer.merge(logs.layer, Logger.minimumLogLevel(LogLevel.Debug)))
      )
      // the check's verdict for a credential within its age: one DEBUG line, after the metadata was read
      const verdict = Effect.map(logs.lines, (lines) => lines.filter((line) => line.text.includes("credential-age")))
      while ((yield* verdict).length === 0) yield* Effect.sleep("10 millis")
      const [line] = yield* verdict
      expect(line?.level).toBe("DEBUG")
      expect(line?.text).toContain("10 days ago")
      expect((yield* double.requests).some((request) => request.url === "/v1/secret/metadata/takumi/production")).toBe(true)
      const alerts = Chunk.toReadonlyArray(yield* Queue.takeAll(subscription))
      expect(alerts.filter((alert) => alert._tag === "CredentialRotationOverdue")).toEqual([])
    }))

  it.scoped.each(["production", "development"] as const)(
    "%s: a Secrets Manager password changed 200 days ago, rotation never configured, raises it with the rotate-secret fix (AWS SDK, the double's DescribeSecret)",
    (environment) =>
      Effect.gen(function*() {
        const { secretId, settings } = yield* withAws(environment, { deny: false })
        const alert = yield* nextOverdue(yield* client(settings))
        expect(alert).toMatchObject({ backend: "aws-secrets-manager", secret: secretId, ageDays: 200, rotationEnabled: false })
        expect(alert.message).toContain(`aws secretsmanager rotate-secret --secret-id ${secretId}`)
      })
  )

  it.scoped("production: without secretsmanager:DescribeSecret the client starts and one INFO line names the permission", () =>
    Effect.gen(function*() {
      const logs = yield* makeLogCapture
      const { double, settings } = yield* withAws("production", { deny: true })
      yield* client(settings).pipe(Effect.provide(logs.layer))
      const described = Effect.map(double.requests, (requests) =>
        requests.some((request) => request.headers["x-amz-target"] === "secretsmanager.DescribeSecret"))
      while (!(yield* described)) yield* Effect.sleep("10 millis")
      const line = Effect.map(logs.lines, (lines) => lines.filter((l) => l.text.includes("credential-age")))
      while ((yield* line).length === 0) yield* Effect.sleep("10 millis")
      const [only, ...more] = yield* line
      expect(more).toEqual([])
      expect(only?.level).toBe("INFO")
      expect(only?.text).toContain("secretsmanager:DescribeSecret")
      expect(only?.text).not.toContain(APP_PASSWORD)
    }))
})
