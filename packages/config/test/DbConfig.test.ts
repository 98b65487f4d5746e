import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { vi } from "vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import { ConfigError, DbConfig, InsecureConfiguration, SecurityPolicy, testSettings } from "../src/index.js"
import { decode, devBase, prodBase, testCaPem, withLogs } from "./fixtures.js"

const execFile = promisify(ChildProcess.execFile)

const fail = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)

const issueVariables = (error: ConfigError | InsecureConfiguration): ReadonlyArray<string> =>
  error._tag === "ConfigError" ? error.issues.map((issue) => issue.variable) : [error.variable]

/** The outcome `test/child/loadConfig.ts` prints: the settings loaded, or the error's tag, message and variables. */
interface ChildOutcome {
  readonly ok: boolean
  readonly tag?: string
  readonly message?: string
  readonly variables?: ReadonlyArray<string>
}

/**
 * Loads the configuration from `env` alone in a child process running as `user`: the real file
 * system and the real permission checks of that uid.
 */
const loadAs = (user: string, env: Record<string, string>): Effect.Effect<ChildOutcome> =>
  Effect.promise(async () => {
    const ids = await idsOf(user)
    const { stdout } = await execFile(
      process.execPath,
      ["--conditions=@takumi/source", "--import", "tsx", Path.join(import.meta.dirname, "child", "loadConfig.ts")],
      { ...ids, cwd: Path.join(import.meta.dirname, ".."), env: { PATH: process.env["PATH"] ?? "", HOME: Os.tmpdir(), ...env } }
    )
    return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as ChildOutcome
  })

/** The uid and gid of a local user (`id -u` / `id -g`). */
const idsOf = async (user: string) => {
  const [uid, gid] = await Promise.all([execFile("id", ["-u", user]), execFile("id", ["-g", user])])
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

const pem = (label: string, body = "MIIBszCCAVmgAwIBAgIUQk") => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`

/** A fresh, real (unencrypted, PKCS #8) private key. */
const privateKeyPem = () =>
  Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

/** A scoped temporary directory with the given files written into it. */
const tempFiles = (files: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "takumi-config-" })
    for (const [name, content] of Object.entries(files)) yield* fs.writeFileString(`${dir}/${name}`, content)
    return dir
  }).pipe(Effect.provide(NodeFileSystem.layer))

describe("DbConfig.layer", () => {
  describe("decoding", () => {
    it.effect("decodes a minimal development environment and fills every default from the requirements", () =>
      Effect.gen(function*() {
        const settings = yield* decode(devBase)
        expect(settings.environment).toBe("development")
        expect(settings.host).toBe("localhost")
        expect(settings.port).toBe(5432)
        expect(settings.user).toBe("app")
        expect(settings.database).toBe("app")
        expect(Option.map(settings.password, Redacted.value)).toEqual(Option.some("dev-password-123"))
        expect(settings.applicationName).toBe("takumi-db")
        expect(settings.tls).toMatchObject({ enabled: true, rejectUnauthorized: true, minVersion: "TLSv1.2" })
        expect(settings.pool).toEqual({ min: 2, max: 5 })
        expect(Duration.toMillis(settings.connectTimeout)).toBe(2000)
        expect(Duration.toMillis(settings.idleTimeout)).toBe(30_000)
        expect(Duration.toMillis(settings.failoverTimeout)).toBe(5000)
        expect(Option.isNone(settings.readReplica)).toBe(true)
        expect(settings.secrets.backend).toBe("env")
        expect(Duration.toMillis(settings.secrets.cacheTtl)).toBe(5 * 60_000)
        expect(Duration.toMillis(settings.secrets.maxStale)).toBe(10 * 60_000)
        expect(Duration.toMillis(settings.secrets.requestTimeout)).toBe(3000)
        expect(settings.secrets.prefix).toBe("takumi/development/")
        expect(settings.alerts.failedAuthThreshold).toBe(5)
        expect(Duration.toMillis(settings.alerts.failedAuthWindow)).toBe(5 * 60_000)
        expect(settings.alerts.poolUsageRatio).toBe(0.9)
        expect(Duration.toMillis(settings.alerts.slowQuery)).toBe(5000)
        expect(Duration.toDays(settings.alerts.certificateExpiry)).toBe(30)
        expect(Duration.toDays(settings.alerts.credentialMaxAge)).toBe(90)
      }))

    it.effect.each([
      ["development", devBase, { min: 2, max: 5 }],
      ["test", { ...devBase, NODE_ENV: "test" }, { min: 1, max: 3 }],
      ["staging", { ...prodBase, NODE_ENV: "staging" }, { min: 5, max: 20 }],
      ["production", prodBase, { min: 10, max: 50 }]
    ] as const)("uses the %s pool preset when DB_POOL_MIN and DB_POOL_MAX are unset", ([, variables, pool]) =>
      Effect.gen(function*() {
        const settings = yield* decode(variables)
        expect(settings.pool).toEqual(pool)
      }))

    it.effect("decodes every variable of a full production configuration with a Vault backend", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          NODE_ENV: "production",
          DB_HOST: "primary.db.internal",
          DB_PORT: "6432",
          DB_NAME: "takumi",
          DB_USER: "takumi_app",
          DB_APPLICATION_NAME: "orders-api",
          DB_SSL: "TRUE",
          DB_SSL_REJECT_UNAUTHORIZED: "1",
          DB_SSL_MIN_VERSION: "TLSv1.3",
          DB_POOL_MIN: "4",
          DB_POOL_MAX: "40",
          DB_CONNECTION_TIMEOUT: "1500",
          DB_IDLE_TIMEOUT: "10000",
          DB_READ_REPLICA_HOST: "replica.db.internal",
          DB_FAILOVER_TIMEOUT: "2500",
          SECRETS_BACKEND: "vault",
          SECRETS_CACHE_TTL: "60000",
          SECRETS_MAX_STALE: "120000",
          SECRETS_REQUEST_TIMEOUT: "2000",
          VAULT_ADDR: "https://vault.example.com:8200",
          VAULT_TOKEN: "s.productiontoken",
          VAULT_PATH: "secret/takumi/production",
          VAULT_NAMESPACE: "team-a",
          DB_ALERT_FAILED_AUTH_THRESHOLD: "3",
          DB_ALERT_FAILED_AUTH_WINDOW: "60000",
          DB_ALERT_POOL_USAGE: "0.75",
          DB_ALERT_SLOW_QUERY: "2000",
          DB_ALERT_CERT_EXPIRY_DAYS: "14",
          DB_CREDENTIAL_MAX_AGE: "30"
        })
        expect(settings).toMatchObject({
          host: "primary.db.internal",
          port: 6432,
          database: "takumi",
          user: "takumi_app",
          applicationName: "orders-api",
          pool: { min: 4, max: 40 },
          tls: { enabled: true, rejectUnauthorized: true, minVersion: "TLSv1.3" }
        })
        expect(settings.readReplica).toEqual(Option.some({ host: "replica.db.internal", port: 6432 }))
        expect(Duration.toMillis(settings.connectTimeout)).toBe(1500)
        expect(Duration.toMillis(settings.idleTimeout)).toBe(10_000)
        expect(Duration.toMillis(settings.failoverTimeout)).toBe(2500)
        expect(Duration.toMillis(settings.secrets.cacheTtl)).toBe(60_000)
        expect(Duration.toMillis(settings.secrets.maxStale)).toBe(120_000)
        expect(Duration.toMillis(settings.secrets.requestTimeout)).toBe(2000)
        const vault = Option.getOrThrow(settings.secrets.vault)
        expect(vault.address).toBe("https://vault.example.com:8200")
        expect(vault.auth.method === "token" && Redacted.value(vault.auth.token)).toBe("s.productiontoken")
        expect(vault.path).toBe("secret/takumi/production")
        expect(vault.namespace).toEqual(Option.some("team-a"))
        expect(Option.isNone(settings.secrets.aws)).toBe(true)
        expect(settings.alerts.failedAuthThreshold).toBe(3)
        expect(Duration.toMillis(settings.alerts.failedAuthWindow)).toBe(60_000)
        expect(settings.alerts.poolUsageRatio).toBe(0.75)
        expect(Duration.toMillis(settings.alerts.slowQuery)).toBe(2000)
        expect(Duration.toDays(settings.alerts.certificateExpiry)).toBe(14)
        expect(Duration.toDays(settings.alerts.credentialMaxAge)).toBe(30)
      }))

    it.effect("decodes the AWS backend with its region, endpoint and attempt budget", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          ...prodBase,
          AWS_ENDPOINT_URL_SECRETS_MANAGER: "https://vpce-123.secretsmanager.us-east-1.vpce.amazonaws.com",
          AWS_MAX_ATTEMPTS: "5"
        })
        expect(settings.secrets.aws).toEqual(
          Option.some({
            region: "us-east-1",
            endpoint: Option.some("https://vpce-123.secretsmanager.us-east-1.vpce.amazonaws.com"),
            maxAttempts: 5,
            caBundle: Option.none()
          })
        )
        expect(settings.secrets.prefix).toBe("takumi/production/")
      }))

    it.effect("accepts IPv6 addresses in DB_HOST and, bracketed, in DATABASE_URL", () =>
      Effect.gen(function*() {
        const direct = yield* decode({ ...devBase, DB_HOST: "::1" })
        expect(direct.host).toBe("::1")
        const viaUrl = yield* decode({ NODE_ENV: "development", DB_PASSWORD: "p", DATABASE_URL: "postgres://app@[fd00::5]:5433/db" })
        expect(viaUrl).toMatchObject({ host: "fd00::5", port: 5433, database: "db" })
      }))

    it.effect("reads a libpq-style host list from DB_HOST, each entry without a port taking DB_PORT", () =>
      Effect.gen(function*() {
        const settings = yield* decode({ ...devBase, DB_HOST: "db-a:5433,db-b,[fd00::5]:5434" })
        expect(settings.hosts).toEqual([
          { host: "db-a", port: 5433 },
          { host: "db-b", port: 5432 },
          { host: "fd00::5", port: 5434 }
        ])
        expect(settings).toMatchObject({ host: "db-a", port: 5433, targetSessionAttrs: "read-write", loadBalanceHosts: "disable" })
        const single = yield* decode({ ...devBase, DB_HOST: "db-a" })
        expect(single.hosts).toEqual([{ host: "db-a", port: single.port }])
        expect(single.targetSessionAttrs).toBe("any")
      }))

    it.effect("reads a multi-host DATABASE_URL with target_session_attrs and load_balance_hosts", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          NODE_ENV: "development",
          DB_PASSWORD: "p",
          DATABASE_URL: "postgresql://app@db-a:5432,db-b:5433/orders?target_session_attrs=prefer-standby&load_balance_hosts=random"
        })
        expect(settings.hosts).toEqual([{ host: "db-a", port: 5432 }, { host: "db-b", port: 5433 }])
        expect(settings).toMatchObject({ user: "app", database: "orders", targetSessionAttrs: "prefer-standby", loadBalanceHosts: "random" })
        const overridden = yield* decode({
          ...devBase,
          DB_TARGET_SESSION_ATTRS: "any",
          DB_LOAD_BALANCE_HOSTS: "random",
          DB_HOST: "db-a:5432,db-b:5433"
        })
        expect(overridden).toMatchObject({ targetSessionAttrs: "any", loadBalanceHosts: "random" })
      }))

    it.effect.each(["true", "TRUE", "True", "1", "false", "FALSE", "False", "0"])(
      "accepts %s as a boolean in DB_SSL and DB_SSL_REJECT_UNAUTHORIZED alike",
      (spelling) =>
        Effect.gen(function*() {
          const expected = spelling.toLowerCase() === "true" || spelling === "1"
          const settings = yield* decode({ ...devBase, DB_SSL: spelling, DB_SSL_REJECT_UNAUTHORIZED: spelling })
          expect(settings.tls.enabled).toBe(expected)
          expect(settings.tls.rejectUnauthorized).toBe(expected)
        })
    )

    it.effect.each(["yes", "on", "off", "", "2", "truee", " true"])(
      "refuses %j as a boolean, naming the variable",
      (spelling) =>
        Effect.gen(function*() {
          const error = yield* fail(decode({ ...devBase, DB_SSL_REJECT_UNAUTHORIZED: spelling }))
          expect(error._tag).toBe("ConfigError")
          expect(issueVariables(error)).toEqual(["DB_SSL_REJECT_UNAUTHORIZED"])
          expect(error.message).toContain("true, false, 1 or 0")
        })
    )

    it.effect("reports every invalid variable at once, each with the form it expects", () =>
      Effect.gen(function*() {
        const error = yield* fail(
          decode({ ...devBase, DB_PORT: "abc", DB_POOL_MAX: "-3", DB_IDLE_TIMEOUT: "soon", DB_SSL: "yes" })
        )
        expect(error._tag).toBe("ConfigError")
        if (error._tag !== "ConfigError") return
        expect(error.issues.map((issue) => issue.variable).sort()).toEqual(
          ["DB_IDLE_TIMEOUT", "DB_POOL_MAX", "DB_PORT", "DB_SSL"]
        )
        expect(error.variable).toBe(error.issues[0]?.variable)
        expect(error.message).toContain("4 configuration variables are invalid")
        expect(error.message).toContain(`DB_PORT: expected an integer port from 1 to 65535, received "abc"`)
      }))
  })

  describe("authentication methods and statement timeouts", () => {
    it.effect("defaults to channel binding prefer, SCRAM or no password in production, every method in development", () =>
      Effect.gen(function*() {
        const production = yield* decode(prodBase)
        expect(production.auth).toEqual({ channelBinding: "prefer", requireAuth: ["scram-sha-256", "none"] })
        const development = yield* decode(devBase)
        expect(development.auth.requireAuth).toEqual(["scram-sha-256", "md5", "password", "none"])
      }))

    it.effect("reads DB_CHANNEL_BINDING and DB_REQUIRE_AUTH, and the same names in DATABASE_URL", () =>
      Effect.gen(function*() {
        const variables = yield* decode({ ...prodBase, DB_CHANNEL_BINDING: "require", DB_REQUIRE_AUTH: "scram-sha-256" })
        expect(variables.auth).toEqual({ channelBinding: "require", requireAuth: ["scram-sha-256"] })
        const { DB_HOST: _host, DB_USER: _user, DB_NAME: _name, ...rest } = prodBase
        const url = yield* decode({
          ...rest,
          DATABASE_URL: "postgres://takumi_prod@db.example.com/takumi?channel_binding=require&require_auth=none"
        })
        expect(url.auth).toEqual({ channelBinding: "require", requireAuth: ["none"] })
      }))

    it.effect("reads DB_POOLER (none by default) and refuses an unknown pooler", () =>
      Effect.gen(function*() {
        expect((yield* decode(devBase)).pooler).toBe("none")
        expect((yield* decode({ ...prodBase, DB_POOLER: "pgbouncer" })).pooler).toBe("pgbouncer")
        expect(issueVariables(yield* fail(decode({ ...devBase, DB_POOLER: "pgpool" })))).toEqual(["DB_POOLER"])
      }))

    it.effect("refuses DB_CHANNEL_BINDING=require with DB_POOLER=pgbouncer, in DATABASE_URL too (PgBouncer never offers -PLUS)", () =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...devBase, DB_POOLER: "pgbouncer", DB_CHANNEL_BINDING: "require" }))
        expect(issueVariables(error)).toEqual(["DB_CHANNEL_BINDING"])
        expect(error.message).toContain("PgBouncer does not offer SCRAM-SHA-256-PLUS")
        const { DB_HOST: _host, DB_USER: _user, DB_NAME: _name, ...rest } = devBase
        const url = yield* fail(decode({
          ...rest,
          DB_POOLER: "pgbouncer",
          DATABASE_URL: "postgres://app@localhost/app?channel_binding=require"
        }))
        expect(issueVariables(url)).toEqual(["DB_CHANNEL_BINDING"])
        expect((yield* decode({ ...devBase, DB_POOLER: "pgbouncer", DB_CHANNEL_BINDING: "prefer" })).auth.channelBinding)
          .toBe("prefer")
      }))

    it.effect("refuses an unknown channel binding, an unknown or negated method, naming the variable", () =>
      Effect.gen(function*() {
        for (const [variable, value] of [
          ["DB_CHANNEL_BINDING", "always"],
          ["DB_REQUIRE_AUTH", "scram-sha-256,kerberos"],
          ["DB_REQUIRE_AUTH", "!md5"]
        ] as const) {
          const error = yield* fail(decode({ ...devBase, [variable]: value }))
          expect(issueVariables(error)).toEqual([variable])
        }
        const url = yield* fail(decode({ ...devBase, DATABASE_URL: "postgres://app@localhost/app?require_auth=!md5" }))
        expect(issueVariables(url)).toEqual(["DATABASE_URL"])
      }))

    it.effect("refuses md5 or cleartext in DB_REQUIRE_AUTH and channel binding off in production (InsecureConfiguration)", () =>
      Effect.gen(function*() {
        const md5 = yield* fail(decode({ ...prodBase, DB_REQUIRE_AUTH: "scram-sha-256,md5" }))
        expect(md5).toMatchObject({ _tag: "InsecureConfiguration", rule: "password-auth-method" })
        const off = yield* fail(decode({ ...prodBase, DB_CHANNEL_BINDING: "disable" }))
        expect(off).toMatchObject({ _tag: "InsecureConfiguration", rule: "channel-binding" })
        expect((yield* decode({ ...devBase, DB_REQUIRE_AUTH: "md5" })).auth.requireAuth).toEqual(["md5"])
      }))

    it.effect("sends statement and idle-in-transaction timeouts by default; the client bound follows the statement timeout", () =>
      Effect.gen(function*() {
        const defaults = yield* decode(devBase)
        expect([defaults.statementTimeout, defaults.idleInTransactionTimeout, defaults.queryTimeout].map(Duration.toMillis))
          .toEqual([30_000, 60_000, 35_000])
        const shorter = yield* decode({ ...devBase, DB_STATEMENT_TIMEOUT: "1000", DB_IDLE_IN_TRANSACTION_TIMEOUT: "0" })
        expect([shorter.statementTimeout, shorter.idleInTransactionTimeout, shorter.queryTimeout].map(Duration.toMillis))
          .toEqual([1000, 0, 6000])
        const none = yield* decode({ ...devBase, DB_STATEMENT_TIMEOUT: "0" })
        expect(Duration.toMillis(none.queryTimeout)).toBe(0)
        const own = yield* decode({ ...devBase, DB_QUERY_TIMEOUT: "2500" })
        expect(Duration.toMillis(own.queryTimeout)).toBe(2500)
      }))

    it.effect("warns in production when no DB_SSL_CA is set that the public CA store (and NODE_EXTRA_CA_CERTS) is trusted", () =>
      Effect.gen(function*() {
        const { DB_SSL_CA: _ca, ...withoutCa } = prodBase
        // Node reads NODE_EXTRA_CA_CERTS from the real process environment, and so does the policy
        vi.stubEnv("NODE_EXTRA_CA_CERTS", "/etc/ssl/corp.pem")
        const { logs } = yield* withLogs(decode(withoutCa)).pipe(Effect.ensuring(Effect.sync(() => vi.unstubAllEnvs())))
        const warning = logs.find((line) => line.annotations["rule"] === "public-ca-trust")
        expect(warning?.message).toContain("public CA store and NODE_EXTRA_CA_CERTS=/etc/ssl/corp.pem")
        const withCa = yield* withLogs(decode(prodBase))
        expect(withCa.logs.filter((line) => line.level === "WARN")).toEqual([])
      }))
  })

  describe("bad input", () => {
    const cases: ReadonlyArray<readonly [string, Readonly<Record<string, string>>, string]> = [
      ["port 0", { ...devBase, DB_PORT: "0" }, "DB_PORT"],
      ["port 70000", { ...devBase, DB_PORT: "70000" }, "DB_PORT"],
      ["port abc", { ...devBase, DB_PORT: "abc" }, "DB_PORT"],
      ["port with an exponent", { ...devBase, DB_PORT: "5e3" }, "DB_PORT"],
      ["empty port", { ...devBase, DB_PORT: "" }, "DB_PORT"],
      ["replica port 0", { ...devBase, DB_READ_REPLICA_HOST: "r", DB_READ_REPLICA_PORT: "0" }, "DB_READ_REPLICA_PORT"],
      ["a replica port without a replica host", { ...devBase, DB_READ_REPLICA_PORT: "5433" }, "DB_READ_REPLICA_HOST"],
      ["negative pool minimum", { ...devBase, DB_POOL_MIN: "-1" }, "DB_POOL_MIN"],
      ["non-integer pool maximum", { ...devBase, DB_POOL_MAX: "2.5" }, "DB_POOL_MAX"],
      ["pool maximum 0", { ...devBase, DB_POOL_MAX: "0" }, "DB_POOL_MAX"],
      ["pool min > max", { ...devBase, DB_POOL_MIN: "8", DB_POOL_MAX: "4" }, "DB_POOL_MIN"],
      ["pool max below the preset min", { ...prodBase, DB_POOL_MAX: "5" }, "DB_POOL_MAX"],
      ["unknown NODE_ENV", { ...devBase, NODE_ENV: "prod" }, "NODE_ENV"],
      ["NODE_ENV in capitals", { ...devBase, NODE_ENV: "PRODUCTION" }, "NODE_ENV"],
      ["missing NODE_ENV", { DB_HOST: "h", DB_USER: "u", DB_PASSWORD: "p" }, "NODE_ENV"],
      ["unknown SECRETS_BACKEND", { ...devBase, SECRETS_BACKEND: "keychain" }, "SECRETS_BACKEND"],
      ["no SECRETS_BACKEND in production", { ...prodBase, SECRETS_BACKEND: "" }, "SECRETS_BACKEND"],
      ["aws without AWS_REGION", { ...devBase, SECRETS_BACKEND: "aws-secrets-manager" }, "AWS_REGION"],
      ["aws with a malformed region", { ...prodBase, AWS_REGION: "US East" }, "AWS_REGION"],
      ["vault without VAULT_ADDR", { ...devBase, SECRETS_BACKEND: "vault", VAULT_TOKEN: "t", VAULT_PATH: "secret/takumi/development" }, "VAULT_ADDR"],
      ["vault without VAULT_TOKEN", { ...devBase, SECRETS_BACKEND: "vault", VAULT_ADDR: "https://v:8200", VAULT_PATH: "secret/takumi/development" }, "VAULT_TOKEN"],
      ["vault without VAULT_PATH", { ...devBase, SECRETS_BACKEND: "vault", VAULT_ADDR: "https://v:8200", VAULT_TOKEN: "t" }, "VAULT_PATH"],
      ["VAULT_ADDR that is not a URL", { ...devBase, SECRETS_BACKEND: "vault", VAULT_ADDR: "vault:8200", VAULT_TOKEN: "t", VAULT_PATH: "secret/x" }, "VAULT_ADDR"],
      ["env backend without DB_PASSWORD", { NODE_ENV: "test", DB_HOST: "h", DB_USER: "u" }, "DB_PASSWORD"],
      ["empty DB_PASSWORD", { ...devBase, DB_PASSWORD: "" }, "DB_PASSWORD"],
      ["missing DB_HOST", { NODE_ENV: "development", DB_USER: "u", DB_PASSWORD: "p" }, "DB_HOST"],
      ["missing DB_USER", { NODE_ENV: "development", DB_HOST: "h", DB_PASSWORD: "p" }, "DB_USER"],
      ["a host with a space", { ...devBase, DB_HOST: "db example" }, "DB_HOST"],
      ["connect timeout 0", { ...devBase, DB_CONNECTION_TIMEOUT: "0" }, "DB_CONNECTION_TIMEOUT"],
      ["connect timeout past the timer limit", { ...devBase, DB_CONNECTION_TIMEOUT: "2147483648" }, "DB_CONNECTION_TIMEOUT"],
      ["idle timeout in seconds with a unit", { ...devBase, DB_IDLE_TIMEOUT: "30s" }, "DB_IDLE_TIMEOUT"],
      ["negative failover timeout", { ...devBase, DB_FAILOVER_TIMEOUT: "-5000" }, "DB_FAILOVER_TIMEOUT"],
      ["cache TTL as a fraction", { ...devBase, SECRETS_CACHE_TTL: "0.5" }, "SECRETS_CACHE_TTL"],
      ["unknown TLS version", { ...devBase, DB_SSL_MIN_VERSION: "TLSv1.4" }, "DB_SSL_MIN_VERSION"],
      ["pool usage alert as a percentage", { ...devBase, DB_ALERT_POOL_USAGE: "90" }, "DB_ALERT_POOL_USAGE"],
      ["pool usage alert 0", { ...devBase, DB_ALERT_POOL_USAGE: "0" }, "DB_ALERT_POOL_USAGE"],
      ["certificate expiry alert 0 days", { ...devBase, DB_ALERT_CERT_EXPIRY_DAYS: "0" }, "DB_ALERT_CERT_EXPIRY_DAYS"],
      ["credential max age 0 days", { ...devBase, DB_CREDENTIAL_MAX_AGE: "0" }, "DB_CREDENTIAL_MAX_AGE"],
      ["credential max age as a duration text", { ...devBase, DB_CREDENTIAL_MAX_AGE: "90 days" }, "DB_CREDENTIAL_MAX_AGE"],
      ["application name longer than 63 characters", { ...devBase, DB_APPLICATION_NAME: "x".repeat(64) }, "DB_APPLICATION_NAME"],
      ["AWS attempts 0", { ...prodBase, AWS_MAX_ATTEMPTS: "0" }, "AWS_MAX_ATTEMPTS"],
      ["a certificate path that does not exist", { ...devBase, DB_SSL_CA: "/nonexistent/takumi/ca.pem" }, "DB_SSL_CA"],
      ["a certificate path that is a directory", { ...devBase, DB_SSL_CA: "/tmp" }, "DB_SSL_CA"],
      ["a Vault CA path that does not exist", { ...devBase, VAULT_CACERT: "/nonexistent/vault-ca.pem" }, "VAULT_CACERT"],
      ["inline PEM without its END line", { ...devBase, DB_SSL_CA: "-----BEGIN CERTIFICATE-----\nMIIB" }, "DB_SSL_CA"],
      ["a URL with another scheme", { ...devBase, DATABASE_URL: "mysql://u@h/db" }, "DATABASE_URL"],
      ["a URL that is not a URL", { ...devBase, DATABASE_URL: "postgres://u:p@/:what" }, "DATABASE_URL"],
      ["a URL without a host", { ...devBase, DATABASE_URL: "postgres:///db" }, "DATABASE_URL"],
      ["a URL with port 0", { ...devBase, DATABASE_URL: "postgres://u@h:0/db" }, "DATABASE_URL"],
      ["a URL with port 70000", { ...devBase, DATABASE_URL: "postgres://u@h:70000/db" }, "DATABASE_URL"],
      ["a URL whose host list has a bad port", { ...devBase, DATABASE_URL: "postgres://u@h1,h2:70000/db" }, "DATABASE_URL"],
      ["a URL with sslmode=prefer", { ...devBase, DATABASE_URL: "postgres://u@h/db?sslmode=prefer" }, "DATABASE_URL"],
      ["a URL with an unknown sslmode", { ...devBase, DATABASE_URL: "postgres://u@h/db?sslmode=strict" }, "DATABASE_URL"],
      ["a URL with an unsupported parameter", { ...devBase, DATABASE_URL: "postgres://u@h/db?sslrootcert=/ca.pem" }, "DATABASE_URL"],
      ["a URL with malformed percent-encoding", { ...devBase, DATABASE_URL: "postgres://u:%E0%A4%A@h/db" }, "DATABASE_URL"]
    ]

    it.effect.each(cases)("refuses %s with a ConfigError naming the variable", ([, variables, variable]) =>
      Effect.gen(function*() {
        const error = yield* fail(decode(variables))
        expect(error._tag).toBe("ConfigError")
        if (error._tag !== "ConfigError") return
        expect(error.issues.map((issue) => issue.variable)).toContain(variable)
        const issue = error.issues.find((candidate) => candidate.variable === variable)
        expect(issue?.expected.length).toBeGreaterThan(0)
        expect(issue?.message.startsWith(`${variable}: `)).toBe(true)
      }))
  })

  it.effect("refuses credentials in VAULT_ADDR without echoing them", () =>
    Effect.gen(function*() {
      const error = yield* fail(decode({
        ...devBase,
        SECRETS_BACKEND: "vault",
        VAULT_ADDR: "https://admin:hunter2hunter2@vault.example.com",
        VAULT_TOKEN: "t",
        VAULT_PATH: "secret/takumi/development"
      }))
      expect(issueVariables(error)).toEqual(["VAULT_ADDR"])
      expect(error.message).not.toContain("hunter2hunter2")
    }))

  describe("echoed values", () => {
    it.effect.each([
      ["DB_HOST", "u:Hunter2Secret@db", "Hunter2Secret", `received "db"`],
      ["VAULT_ADDR", "htps://vault.internal:8200/v1?token=s.Leaked99#frag", "s.Leaked99", `received "htps://vault.internal:8200/v1"`],
      ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "ftp://admin:Pw0rd9@10.0.0.1/x", "Pw0rd9", `received "ftp://10.0.0.1/x"`],
      ["DB_PORT", "5432#pw=Secret77", "Secret77", `received "5432"`]
    ] as const)("strips user-info, query and fragment from an echoed %s", ([variable, value, secret, shown]) =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...devBase, SECRETS_BACKEND: "vault", VAULT_TOKEN: "t", VAULT_PATH: "secret/takumi/development", VAULT_ADDR: "https://vault:8200", [variable]: value }))
        expect(issueVariables(error)).toContain(variable)
        expect(error.message).toContain(shown)
        expect(error.message).toContain("not shown")
        for (const text of [error.message, JSON.stringify(error)]) expect(text).not.toContain(secret)
      }))
  })

  describe("certificates", () => {
    it.scoped("accepts a readable PEM file path as a File source", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ "ca.pem": testCaPem, "client.pem": testCaPem, "client.key": privateKeyPem() })
        const settings = yield* decode({
          ...devBase,
          DB_SSL_CA: `${dir}/ca.pem`,
          DB_SSL_CERT: `${dir}/client.pem`,
          DB_SSL_KEY: `${dir}/client.key`
        })
        expect(settings.tls.ca).toEqual(Option.some({ _tag: "File", path: `${dir}/ca.pem` }))
        expect(settings.tls.cert).toEqual(Option.some({ _tag: "File", path: `${dir}/client.pem` }))
        expect(settings.tls.key).toEqual(Option.some({ _tag: "File", path: `${dir}/client.key` }))
      }))

    it.scoped("refuses a file that holds no PEM document", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ "ca.der": "0\x82\x01\x0a binary" })
        const error = yield* fail(decode({ ...devBase, DB_SSL_CA: `${dir}/ca.der` }))
        expect(issueVariables(error)).toEqual(["DB_SSL_CA"])
        expect(error.message).toContain("no PEM document")
      }))

    it.effect("accepts inline PEM, restoring escaped line breaks, and keeps it Redacted", () =>
      Effect.gen(function*() {
        const escaped = testCaPem.trim().replaceAll("\n", "\\n")
        const settings = yield* decode({ ...devBase, DB_SSL_CA: escaped })
        const ca = Option.getOrThrow(settings.tls.ca)
        expect(ca._tag).toBe("Inline")
        if (ca._tag !== "Inline") return
        expect(Redacted.value(ca.pem)).toBe(testCaPem.trim())
        expect(String(ca.pem)).toBe("<redacted>")
      }))

    it.effect("says why a certificate path was refused: missing or a directory", () =>
      Effect.gen(function*() {
        const missing = yield* fail(decode({ ...devBase, DB_SSL_CA: "/nonexistent/ca.pem" }))
        expect(missing.message).toContain("no such file")
        const directory = yield* fail(decode({ ...devBase, DB_SSL_CA: "/tmp" }))
        expect(directory.message).toContain("is a directory")
      }))

    it.effect("refuses a certificate file the process may not read, naming the variable (loaded as nobody)", () =>
      Effect.gen(function*() {
        // the suite runs as root, for whom no mode bit denies a read: the loader runs in a child
        // process as `nobody`, the file root's own 0600 in a directory nobody may enter
        const dir = yield* tempFiles({ "ca.pem": testCaPem })
        const path = `${dir}/ca.pem`
        yield* Effect.promise(() => Promise.all([Fs.chmod(dir, 0o755), Fs.chmod(path, 0o600)]))
        const asNobody = (env: Record<string, string>) => loadAs("nobody", env)
        const refused = yield* asNobody({ ...devBase, DB_SSL_CA: path })
        expect(refused.variables).toEqual(["DB_SSL_CA"])
        expect(refused.message).toContain("the file is not readable")
        // the same file readable by everyone loads: the refusal was the permission, not the file
        yield* Effect.promise(() => Fs.chmod(path, 0o644))
        expect(yield* asNobody({ ...devBase, DB_SSL_CA: path })).toEqual({ ok: true })
      }).pipe(Effect.scoped), 60_000)

    it.effect("refuses a client certificate without its key", () =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...devBase, DB_SSL_CERT: testCaPem }))
        expect(issueVariables(error)).toEqual(["DB_SSL_KEY"])
      }))

    it.scoped("parses every PEM when the configuration loads and blames the variable that holds a broken one", () =>
      Effect.gen(function*() {
        const key = privateKeyPem()
        const dir = yield* tempFiles({
          "ca-with-key.pem": testCaPem + key,
          "garbage.pem": pem("CERTIFICATE"),
          "huge.pem": testCaPem + "#".repeat(1024 * 1024)
        })
        const refused = (variables: Readonly<Record<string, string>>) =>
          fail(decode({ ...devBase, ...variables })).pipe(Effect.map((error) => [issueVariables(error), error.message] as const))
        const [withKey, withKeyMessage] = yield* refused({ DB_SSL_CA: `${dir}/ca-with-key.pem` })
        expect(withKey).toEqual(["DB_SSL_CA"])
        expect(withKeyMessage).toContain("holds a private key")
        expect(withKeyMessage).not.toContain(key.split("\n")[1])
        const [garbage, garbageMessage] = yield* refused({ DB_SSL_CA: `${dir}/garbage.pem` })
        expect([garbage, garbageMessage]).toEqual([["DB_SSL_CA"], expect.stringContaining("cannot be parsed")])
        const [huge] = yield* refused({ DB_SSL_CA: `${dir}/huge.pem` })
        expect(huge).toEqual(["DB_SSL_CA"])
        const [cert] = yield* refused({ DB_SSL_CERT: pem("CERTIFICATE"), DB_SSL_KEY: key })
        expect(cert).toEqual(["DB_SSL_CERT"])
        const [badKey, badKeyMessage] = yield* refused({ DB_SSL_CERT: testCaPem, DB_SSL_KEY: pem("PRIVATE KEY", "c2VjcmV0LWtleS1ib2R5") })
        expect(badKey).toEqual(["DB_SSL_KEY"])
        expect(badKeyMessage).not.toContain("c2VjcmV0LWtleS1ib2R5")
        const [crl] = yield* refused({ DB_SSL_CRL: testCaPem })
        expect(crl).toEqual(["DB_SSL_CRL"])
      }))
  })

  describe("DATABASE_URL", () => {
    it.effect("fills host, port, user and database from the URL", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          NODE_ENV: "test",
          DATABASE_URL: "postgresql://orders%40svc@db.example.com:6543/orders?sslmode=verify-full",
          DB_PASSWORD: "test-password"
        })
        expect(settings).toMatchObject({ host: "db.example.com", port: 6543, user: "orders@svc", database: "orders" })
        expect(settings.tls).toMatchObject({ enabled: true, rejectUnauthorized: true })
      }))

    it.effect("keeps explicit DB_HOST, DB_PORT, DB_USER and DB_NAME over the URL's parts", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          ...devBase,
          DATABASE_URL: "postgres://urluser@urlhost:7000/urldb",
          DB_PORT: "5433",
          DB_NAME: "explicit"
        })
        expect(settings).toMatchObject({ host: "localhost", port: 5433, user: "app", database: "explicit" })
      }))

    it.effect.each([
      ["disable", { enabled: false }],
      ["require", { enabled: true, rejectUnauthorized: false }],
      ["verify-ca", { enabled: true, rejectUnauthorized: true }],
      ["verify-full", { enabled: true, rejectUnauthorized: true }]
    ] as const)("maps sslmode=%s onto the TLS settings", ([mode, tls]) =>
      Effect.gen(function*() {
        const settings = yield* decode({ ...devBase, DATABASE_URL: `postgres://h/db?sslmode=${mode}` })
        expect(settings.tls).toMatchObject(tls)
      }))

    it.effect.each([
      ["DB_SSL=false against verify-full", { DB_SSL: "false" }, "verify-full", "DB_SSL"],
      ["DB_SSL=true against disable", { DB_SSL: "true" }, "disable", "DB_SSL"],
      ["DB_SSL_REJECT_UNAUTHORIZED=false against verify-ca", { DB_SSL_REJECT_UNAUTHORIZED: "false" }, "verify-ca", "DB_SSL_REJECT_UNAUTHORIZED"],
      ["DB_SSL_REJECT_UNAUTHORIZED=true against require", { DB_SSL_REJECT_UNAUTHORIZED: "true" }, "require", "DB_SSL_REJECT_UNAUTHORIZED"],
      ["DB_SSL_MIN_VERSION against disable", { DB_SSL_MIN_VERSION: "TLSv1.3" }, "disable", "DB_SSL_MIN_VERSION"],
      ["DB_SSL_CA against disable", { DB_SSL_CA: testCaPem }, "disable", "DB_SSL_CA"]
    ] as const)("refuses %s as a conflict, never overriding either", ([, extra, mode, variable]) =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...devBase, ...extra, DATABASE_URL: `postgres://h/db?sslmode=${mode}` }))
        expect(error._tag).toBe("ConfigError")
        expect(issueVariables(error)).toEqual([variable])
        expect(error.message).toContain(`sslmode=${mode}`)
      }))

    it.effect("accepts DB_SSL variables that agree with the URL's sslmode", () =>
      Effect.gen(function*() {
        const settings = yield* decode({
          ...devBase,
          DB_SSL: "1",
          DB_SSL_REJECT_UNAUTHORIZED: "true",
          DATABASE_URL: "postgres://h/db?sslmode=verify-full"
        })
        expect(settings.tls).toMatchObject({ enabled: true, rejectUnauthorized: true })
      }))

    it.effect("treats a password in the URL like DB_PASSWORD: Redacted, and enough for the env backend", () =>
      Effect.gen(function*() {
        const settings = yield* decode({ NODE_ENV: "development", DATABASE_URL: "postgres://app:s3cr%2Ft@localhost/app" })
        expect(Option.map(settings.password, Redacted.value)).toEqual(Option.some("s3cr/t"))
      }))

    it.effect("refuses a password given both in DB_PASSWORD and in the URL", () =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...devBase, DATABASE_URL: "postgres://app:other@localhost/app" }))
        expect(issueVariables(error)).toEqual(["DB_PASSWORD"])
      }))

    it.effect("refuses a password in the URL in production, naming DATABASE_URL", () =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...prodBase, DATABASE_URL: "postgres://app:pw@db.example.com/app" }))
        expect(error).toBeInstanceOf(InsecureConfiguration)
        expect(error).toMatchObject({ rule: "password-in-environment", variable: "DATABASE_URL" })
      }))

    it.effect("refuses sslmode=require in production: it encrypts without verifying the server", () =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...prodBase, DATABASE_URL: "postgres://db.example.com/app?sslmode=require" }))
        expect(error).toMatchObject({ _tag: "InsecureConfiguration", rule: "certificate-validation" })
      }))
  })

  describe(".env", () => {
    it.scoped("loads .env in development, with variables from the environment taking precedence", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ ".env": "DB_HOST=file-host\nDB_USER=file-user\nDB_PASSWORD=file-password\nDB_PORT=6000\n" })
        const settings = yield* decode({ NODE_ENV: "development", DB_HOST: "env-host" }, { dotEnv: `${dir}/.env` })
        expect(settings).toMatchObject({ host: "env-host", user: "file-user", port: 6000 })
        expect(Option.map(settings.password, Redacted.value)).toEqual(Option.some("file-password"))
      }))

    it.scoped("loads .env in test", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ ".env": "DB_HOST=file-host\nDB_USER=u\nDB_PASSWORD=p\n" })
        const settings = yield* decode({ NODE_ENV: "test" }, { dotEnv: `${dir}/.env` })
        expect(settings.host).toBe("file-host")
      }))

    it.effect("starts without a .env file in development", () =>
      Effect.gen(function*() {
        const settings = yield* decode(devBase, { dotEnv: "/nonexistent/takumi/.env" })
        expect(settings.host).toBe("localhost")
      }))

    it.scoped("does not load .env in production and warns that it was ignored", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ ".env": "DB_APPLICATION_NAME=from-file\n" })
        const { exit, logs } = yield* withLogs(decode(prodBase, { dotEnv: `${dir}/.env` }))
        expect(Exit.isSuccess(exit) && exit.value.applicationName).toBe("takumi-db")
        const warnings = logs.filter((line) => line.level === "WARN")
        expect(warnings).toHaveLength(1)
        expect(warnings[0]?.message).toContain("not loaded")
      }))

    it.scoped("refuses to start in production when a .env file holds DB_PASSWORD", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ ".env": "DB_PASSWORD=leaked-production-password\n" })
        const error = yield* fail(decode(prodBase, { dotEnv: `${dir}/.env` }))
        expect(error).toMatchObject({ _tag: "InsecureConfiguration", rule: "dotenv-credentials", variable: "DB_PASSWORD" })
        expect(error.message).not.toContain("leaked-production-password")
      }))

    it.scoped("refuses in production a .env holding any credential, naming each and printing none", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({
          ".env": "DATABASE_URL=postgres://app:url-Secret-91@db/app\nVAULT_TOKEN=hvs.dotenv-token-77\nDB_APPLICATION_NAME=x\n"
        })
        const error = yield* fail(decode(prodBase, { dotEnv: `${dir}/.env` }))
        expect(error).toMatchObject({ _tag: "InsecureConfiguration", rule: "dotenv-credentials", variable: "DATABASE_URL" })
        expect(error.message).toContain("DATABASE_URL, VAULT_TOKEN")
        for (const text of [error.message, JSON.stringify(error)]) {
          expect(text).not.toContain("url-Secret-91")
          expect(text).not.toContain("hvs.dotenv-token-77")
        }
        const withoutPassword = yield* tempFiles({ ".env": "DATABASE_URL=postgres://app@db/app\n" })
        const { exit } = yield* withLogs(decode(prodBase, { dotEnv: `${withoutPassword}/.env` }))
        expect(Exit.isSuccess(exit)).toBe(true)
      }))

    it.scoped("only warns in staging when a .env file holds DB_PASSWORD", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({ ".env": "DB_PASSWORD=staging-password\n" })
        const { exit, logs } = yield* withLogs(decode({ ...prodBase, NODE_ENV: "staging" }, { dotEnv: `${dir}/.env` }))
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(logs.filter((line) => line.annotations.rule === "dotenv-credentials")).toHaveLength(1)
      }))

    it.scoped("refuses a .env path that cannot be read as a file", () =>
      Effect.gen(function*() {
        const dir = yield* tempFiles({})
        const error = yield* fail(decode(devBase, { dotEnv: dir }))
        expect(error._tag).toBe("ConfigError")
        expect(issueVariables(error)).toEqual([dir])
      }))
  })

  describe("process-wide TLS switches", () => {
    it.effect.each([
      ["NODE_TLS_REJECT_UNAUTHORIZED", "0"],
      ["VAULT_SKIP_VERIFY", "false"],
      ["VAULT_SKIP_VERIFY", "1"]
    ] as const)("refuses %s=%s in production: it turns verification off behind the settings' back", ([variable, value]) =>
      Effect.gen(function*() {
        const error = yield* fail(decode({ ...prodBase, [variable]: value }))
        expect(error).toMatchObject({ _tag: "InsecureConfiguration", rule: "tls-verification-override", variable })
      }))

    it.effect("reads NODE_TLS_REJECT_UNAUTHORIZED from the real process environment whatever the ConfigProvider", () =>
      Effect.gen(function*() {
        vi.stubEnv("NODE_TLS_REJECT_UNAUTHORIZED", "0")
        const error = yield* fail(decode(prodBase)).pipe(Effect.ensuring(Effect.sync(() => vi.unstubAllEnvs())))
        expect(error).toMatchObject({ rule: "tls-verification-override", variable: "NODE_TLS_REJECT_UNAUTHORIZED" })
      }))

    it.effect("ignores NODE_TLS_REJECT_UNAUTHORIZED=1 and an empty VAULT_SKIP_VERIFY, as Node and node-vault do", () =>
      Effect.gen(function*() {
        const settings = yield* decode({ ...prodBase, NODE_TLS_REJECT_UNAUTHORIZED: "1", VAULT_SKIP_VERIFY: "" })
        expect(settings.environment).toBe("production")
      }))
  })

  describe("layerFrom and layerTest", () => {
    it.effect("layerFrom provides a settings value that passes the policy", () =>
      Effect.gen(function*() {
        const settings = testSettings({ host: "db.internal" })
        const provided = yield* DbConfig.pipe(Effect.provide(DbConfig.layerFrom(settings)))
        expect(provided).toBe(settings)
      }))

    it.effect("layerFrom refuses a production settings value with TLS off", () =>
      Effect.gen(function*() {
        const settings = testSettings({
          environment: "production",
          tls: { enabled: false },
          secrets: { backend: "vault" }
        })
        const error = yield* fail(DbConfig.pipe(Effect.provide(DbConfig.layerFrom(settings))))
        expect(error).toMatchObject({ rule: "tls-required", variable: "DB_SSL" })
        expect(error.message).toContain("Database SSL/TLS is REQUIRED in production. Set DB_SSL=true")
      }))

    it.effect("layerTest merges a partial into the test defaults field by field", () =>
      Effect.gen(function*() {
        const settings = yield* DbConfig.pipe(
          Effect.provide(DbConfig.layerTest({ port: 15432, tls: { rejectUnauthorized: false }, pool: { max: 7 } }))
        )
        expect(settings).toMatchObject({
          environment: "test",
          host: "127.0.0.1",
          port: 15432,
          database: "postgres",
          user: "postgres",
          tls: { enabled: true, rejectUnauthorized: false, minVersion: "TLSv1.2" },
          pool: { min: 1, max: 7 },
          secrets: { backend: "env", prefix: "takumi/test/" }
        })
        expect(Option.isNone(settings.tls.ca)).toBe(true)
      }))

    it.effect("the default layer decodes the active ConfigProvider", () =>
      Effect.gen(function*() {
        const settings = yield* DbConfig.pipe(
          Effect.provide(
            DbConfig.layer.pipe(
              Layer.provide(Layer.setConfigProvider(
                ConfigProvider.fromMap(new Map(Object.entries({ ...devBase, DB_HOST: "from-provider" })))
              ))
            )
          )
        )
        expect(settings.host).toBe("from-provider")
      }))
  })
})


describe("DbConfig.load", () => {
  it.effect("decodes a configuration the policy would refuse, so SecurityPolicy.evaluate can list every refusal", () =>
    Effect.gen(function*() {
      const variables = { ...prodBase, DB_SSL: "false", SECRETS_BACKEND: "env", DB_PASSWORD: "load-secret-Pw-1" }
      const { facts, settings } = yield* DbConfig.load({ dotEnv: false }).pipe(
        Effect.provide(NodeFileSystem.layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables))))
      )
      expect(settings.tls.enabled).toBe(false)
      const refusals = SecurityPolicy.evaluate(settings, facts).filter((finding) => finding.severity === "refuse")
      expect(refusals.map((finding) => finding.rule).sort()).toEqual(
        ["password-in-environment", "secrets-backend-env", "tls-required"]
      )
      expect(JSON.stringify(refusals)).not.toContain("load-secret-Pw-1")
      // the same variables through DbConfig.make stop at the first refusal
      const refused = yield* fail(decode(variables))
      expect(refused._tag).toBe("InsecureConfiguration")
    }))
})

describe("DbConfig.layer with mutual TLS and the env backend", () => {
  const { DB_PASSWORD: _password, ...withoutPassword } = devBase

  it.scoped("does not require DB_PASSWORD when a client certificate and key are configured", () =>
    Effect.gen(function*() {
      const dir = yield* tempFiles({ "client.pem": testCaPem, "client.key": privateKeyPem() })
      const settings = yield* decode({ ...withoutPassword, DB_SSL_CERT: `${dir}/client.pem`, DB_SSL_KEY: `${dir}/client.key` })
      expect(settings.secrets.backend).toBe("env")
      expect(Option.isSome(settings.tls.cert)).toBe(true)
    }))

  it.effect("still requires DB_PASSWORD without a client certificate", () =>
    Effect.gen(function*() {
      const error = yield* fail(decode(withoutPassword))
      expect(issueVariables(error)).toContain("DB_PASSWORD")
    }))
})
