/**
 * Property-based tests of DbConfig.layer over generated environments (fast-check): valid ones
 * decode to what they say, invalid ones fail naming the variable, and no generated secret ever
 * reaches an error, a log line or a rendering of the settings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import { inspect } from "node:util"
import type { Environment } from "../src/index.js"
import { decode, renderings, withLogs } from "./fixtures.js"

type Vars = Record<string, string>

const environments: ReadonlyArray<Environment> = ["development", "test", "staging", "production"]
const environmentArb = fc.constantFrom(...environments)
const deployed = (env: Environment) => env === "staging" || env === "production"

/** Alphanumeric and long enough never to occur in a message by accident. */
const secretArb = fc.stringMatching(/^[A-Za-z0-9]{16,32}$/)
const hostArb = fc.constantFrom("localhost", "127.0.0.1", "db.example.com", "primary-db.internal", "10.0.0.7")
const nameArb = fc.stringMatching(/^[a-z][a-z0-9_]{0,20}$/)
const spelling = (value: boolean) =>
  fc.constantFrom(...(value ? ["true", "TRUE", "True", "1"] : ["false", "FALSE", "False", "0"]))
const optional = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined })

interface Model {
  readonly vars: Vars
  readonly environment: Environment
  readonly host: string
  readonly port: number
  readonly user: string
  readonly database: string
  readonly tls: { readonly enabled: boolean; readonly rejectUnauthorized: boolean }
  readonly pool: { readonly min: number; readonly max: number } | undefined
  readonly connectTimeout: number
  readonly backend: "env" | "vault" | "aws-secrets-manager"
  readonly password: string | undefined
}

const presets = {
  development: { min: 2, max: 5 },
  test: { min: 1, max: 3 },
  staging: { min: 5, max: 20 },
  production: { min: 10, max: 50 }
} as const

/** A valid environment, policy-compliant for its NODE_ENV, and what it must decode to. */
const validArb: fc.Arbitrary<Model> = environmentArb.chain((environment) =>
  fc.record({
    viaUrl: fc.boolean(),
    host: hostArb,
    port: optional(fc.integer({ min: 1, max: 65535 })),
    user: nameArb,
    database: optional(nameArb),
    tlsEnabled: deployed(environment) ? fc.constant(true) : fc.boolean(),
    reject: deployed(environment) ? fc.constant(true) : fc.boolean(),
    spellTls: fc.boolean(),
    pool: optional(
      fc.integer({ min: 1, max: 200 }).chain((max) => fc.integer({ min: 0, max }).map((min) => ({ min, max })))
    ),
    connectTimeout: optional(fc.integer({ min: 1, max: 600_000 })),
    backend: deployed(environment)
      ? fc.constantFrom("vault" as const, "aws-secrets-manager" as const)
      : fc.constantFrom("env" as const, "vault" as const, "aws-secrets-manager" as const),
    secret: secretArb,
    trueSpelling: spelling(true),
    falseSpelling: spelling(false),
    otherTrue: spelling(true),
    otherFalse: spelling(false)
  }).map((g): Model => {
    const vars: Vars = { NODE_ENV: environment, DB_USER: g.user }
    if (g.viaUrl) {
      vars.DATABASE_URL = `postgres://${g.host}${g.port === undefined ? "" : `:${g.port}`}/${g.database ?? ""}`
    } else {
      vars.DB_HOST = g.host
      if (g.port !== undefined) vars.DB_PORT = String(g.port)
      if (g.database !== undefined) vars.DB_NAME = g.database
    }
    if (g.spellTls || !g.tlsEnabled) vars.DB_SSL = g.tlsEnabled ? g.trueSpelling : g.falseSpelling
    if (g.spellTls || !g.reject) vars.DB_SSL_REJECT_UNAUTHORIZED = g.reject ? g.otherTrue : g.otherFalse
    if (g.pool !== undefined) {
      vars.DB_POOL_MIN = String(g.pool.min)
      vars.DB_POOL_MAX = String(g.pool.max)
    }
    if (g.connectTimeout !== undefined) vars.DB_CONNECTION_TIMEOUT = String(g.connectTimeout)
    if (g.backend !== "env" || deployed(environment)) vars.SECRETS_BACKEND = g.backend
    if (g.backend === "env") vars.DB_PASSWORD = g.secret
    if (g.backend === "vault") {
      vars.VAULT_ADDR = "https://vault.example.com:8200"
      vars.VAULT_TOKEN = g.secret
      vars.VAULT_PATH = `secret/takumi/${environment}`
    }
    if (g.backend === "aws-secrets-manager") vars.AWS_REGION = "eu-west-1"
    return {
      vars,
      environment,
      host: g.host,
      port: g.port ?? 5432,
      user: g.user,
      database: g.database ?? g.user,
      tls: { enabled: g.tlsEnabled, rejectUnauthorized: g.reject },
      pool: g.pool,
      connectTimeout: g.connectTimeout ?? 2000,
      backend: g.backend,
      password: g.backend === "env" ? g.secret : undefined
    }
  })
)

const not = (allowed: ReadonlyArray<string>) => fc.string().filter((s) => !allowed.includes(s.toLowerCase()))
const badMillis = fc.constantFrom("0", "-1", "1.5", "1e3", "abc", "", "2147483648", "30s")

/** One broken variable: its name and a value it must refuse (or a set of variables that clash). */
const mutationArb: fc.Arbitrary<{ readonly variable: string; readonly set: Vars }> = fc.oneof(
  fc.oneof(
    fc.constantFrom("0", "70000", "abc", "-1", "1.5", "", "0x10", " 5432"),
    fc.integer({ min: 65536, max: 1e9 }).map(String)
  ).map((v) => ({ variable: "DB_PORT", set: { DB_PORT: v } })),
  fc.oneof(fc.constantFrom("-1", "1.5", "many"), fc.integer({ max: -1 }).map(String))
    .map((v) => ({ variable: "DB_POOL_MIN", set: { DB_POOL_MIN: v } })),
  fc.constantFrom("0", "-3", "2.5", "").map((v) => ({ variable: "DB_POOL_MAX", set: { DB_POOL_MAX: v } })),
  fc.integer({ min: 1, max: 100 }).map((max) => ({
    variable: "DB_POOL_MIN",
    set: { DB_POOL_MIN: String(max + 1), DB_POOL_MAX: String(max) }
  })),
  fc.constantFrom("DB_SSL", "DB_SSL_REJECT_UNAUTHORIZED").chain((variable) =>
    not(["true", "false", "1", "0"]).map((v) => ({ variable, set: { [variable]: v } }))
  ),
  not(environments).map((v) => ({ variable: "NODE_ENV", set: { NODE_ENV: v } })),
  not(["aws-secrets-manager", "vault", "env"]).map((v) => ({ variable: "SECRETS_BACKEND", set: { SECRETS_BACKEND: v } })),
  fc.constantFrom("DB_CONNECTION_TIMEOUT", "DB_IDLE_TIMEOUT", "DB_FAILOVER_TIMEOUT", "SECRETS_CACHE_TTL").chain(
    (variable) => badMillis.map((v) => ({ variable, set: { [variable]: v } }))
  ),
  fc.string().filter((s) => !["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"].includes(s))
    .map((v) => ({ variable: "DB_SSL_MIN_VERSION", set: { DB_SSL_MIN_VERSION: v } })),
  nameArb.map((name) => ({ variable: "DB_SSL_CA", set: { DB_SSL_CA: `/nonexistent/${name}.pem` } })),
  fc.constantFrom("0", "1.5", "90", "-0.5").map((v) => ({ variable: "DB_ALERT_POOL_USAGE", set: { DB_ALERT_POOL_USAGE: v } })),
  // secret-bearing variables, refused without echoing the secret
  secretArb.chain((secret) =>
    fc.constantFrom(
      `mysql://u:${secret}@h/db`,
      `postgres://u:${secret}@h:0/db`,
      `postgres://u:${secret}@/db`,
      `postgres://u:${secret}@h/db?sslmode=prefer`,
      // a host list is valid now (libpq multi-host); one with a bad port is not
      `postgres://u:${secret}@h1,h2:70000/db`,
      `postgres://u:${secret}@h/db?password=${secret}`,
      `postgres://u:${secret}%ZZ@h/db`,
      secret
    ).map((url) => ({ variable: "DATABASE_URL", set: { DATABASE_URL: url } }))
  ),
  secretArb.map((secret) => ({ variable: "VAULT_TOKEN", set: { VAULT_TOKEN: `${secret} ${secret}` } })),
  secretArb.chain((secret) =>
    fc.constantFrom(`-----BEGIN PRIVATE KEY-----\n${secret}`, secret, `./${secret}.key`)
      .map((key) => ({ variable: "DB_SSL_KEY", set: { DB_SSL_KEY: key, DB_SSL_CERT: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----" } }))
  ),
  fc.constant({ variable: "DB_PASSWORD", set: { DB_PASSWORD: "" } }),
  fc.constant({ variable: "DB_SSL_KEY_PASSPHRASE", set: { DB_SSL_KEY_PASSPHRASE: "" } })
)

const run = (vars: Vars) => Effect.runPromise(withLogs(decode(vars)))

describe("DbConfig.layer (properties)", () => {
  it("decodes every valid generated environment to exactly what it states", async () => {
    await fc.assert(
      fc.asyncProperty(validArb, async (model) => {
        const { exit } = await run(model.vars)
        // the failure's Cause.pretty is the most useful thing fast-check can shrink and print
        expect(Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "decoded").toBe("decoded")
        if (Exit.isFailure(exit)) return
        const settings = exit.value
        expect(settings.environment).toBe(model.environment)
        expect(settings.host).toBe(model.host)
        expect(settings.port).toBe(model.port)
        expect(settings.user).toBe(model.user)
        expect(settings.database).toBe(model.database)
        expect(settings.tls.enabled).toBe(model.tls.enabled)
        if (model.tls.enabled) expect(settings.tls.rejectUnauthorized).toBe(model.tls.rejectUnauthorized)
        expect(settings.pool).toEqual(model.pool ?? presets[model.environment])
        expect(Duration.toMillis(settings.connectTimeout)).toBe(model.connectTimeout)
        expect(settings.secrets.backend).toBe(model.backend)
        expect(Option.getOrUndefined(Option.map(settings.password, Redacted.value))).toBe(model.password)
      }),
      { numRuns: 150 }
    )
  })

  it("fails every generated environment with one broken variable, naming that variable", async () => {
    await fc.assert(
      fc.asyncProperty(validArb, mutationArb, async (model, mutation) => {
        const { exit } = await run({ ...model.vars, ...mutation.set })
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isSuccess(exit)) return
        const error = Cause.failureOption(exit.cause)
        expect(Option.isSome(error)).toBe(true)
        if (Option.isNone(error)) return
        expect(error.value._tag).toBe("ConfigError")
        if (error.value._tag !== "ConfigError") return
        expect(error.value.issues.map((issue) => issue.variable)).toContain(mutation.variable)
      }),
      { numRuns: 200 }
    )
  })

  it("never lets a generated secret reach an error, a log line or a rendering of the settings", async () => {
    const arb = fc.record({
      environment: environmentArb,
      password: secretArb,
      token: secretArb,
      urlPassword: secretArb,
      keyBody: secretArb,
      passphrase: secretArb,
      include: fc.record({ password: fc.boolean(), url: fc.boolean(), vault: fc.boolean(), key: fc.boolean() }),
      mutations: fc.array(mutationArb, { maxLength: 3 })
    })
    await fc.assert(
      fc.asyncProperty(arb, async (g) => {
        const vars: Vars = { NODE_ENV: g.environment, DB_HOST: "db.example.com", DB_USER: "app" }
        if (g.include.password) vars.DB_PASSWORD = g.password
        if (g.include.url) vars.DATABASE_URL = `postgres://app:${g.urlPassword}@db.example.com/app`
        if (g.include.vault) {
          Object.assign(vars, {
            SECRETS_BACKEND: "vault",
            VAULT_ADDR: "https://vault.example.com:8200",
            VAULT_TOKEN: g.token,
            VAULT_PATH: `secret/takumi/${g.environment}`
          })
        }
        if (g.include.key) {
          Object.assign(vars, {
            DB_SSL_CERT: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            DB_SSL_KEY: `-----BEGIN PRIVATE KEY-----\n${g.keyBody}\n-----END PRIVATE KEY-----`,
            DB_SSL_KEY_PASSPHRASE: g.passphrase
          })
        }
        const secrets = [g.password, g.token, g.urlPassword, g.keyBody, g.passphrase]
        for (const mutation of g.mutations) {
          Object.assign(vars, mutation.set)
          // the secret-bearing mutations carry secrets of their own
          for (const value of Object.values(mutation.set)) {
            for (const match of value.match(/[A-Za-z0-9]{16,}/g) ?? []) secrets.push(match)
          }
        }
        const { exit, logs } = await run(vars)
        const texts: Array<string> = logs.map((line) => `${line.message} ${JSON.stringify(line.annotations)}`)
        if (Exit.isFailure(exit)) {
          texts.push(Cause.pretty(exit.cause))
          const error = Cause.failureOption(exit.cause)
          if (Option.isSome(error)) texts.push(...renderings(error.value))
        } else {
          texts.push(inspect(exit.value, { depth: 10 }), JSON.stringify(exit.value), String(exit.value))
        }
        for (const text of texts) {
          for (const secret of secrets) expect(text).not.toContain(secret)
        }
      }),
      { numRuns: 200 }
    )
  })
})
