import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import {
  type DbSettings,
  type Environment,
  InsecureConfiguration,
  type Rule,
  SecurityPolicy,
  testSettings
} from "../src/index.js"
import { withLogs } from "./fixtures.js"

/** Settings that pass the policy in every environment: TLS verified, AWS backend, own prefix. */
const secure = (environment: Environment): DbSettings =>
  testSettings({
    environment,
    host: "db.example.com",
    tls: { ca: Option.some({ _tag: "File", path: "/etc/takumi/db-ca.pem" }) },
    secrets: {
      backend: "aws-secrets-manager",
      aws: Option.some({ region: "us-east-1", endpoint: Option.none(), maxAttempts: 3, caBundle: Option.none() })
    }
  })

const other = (environment: Environment): Environment => environment === "production" ? "staging" : "production"

type Expectation = "refuse" | "warn" | "pass"

interface Case {
  readonly rule: Rule
  readonly variable: string
  /** what a refusal's message must tell the operator to do */
  readonly fix: string
  readonly settings: (environment: Environment) => DbSettings
  readonly facts?: (environment: Environment) => SecurityPolicy.EnvironmentFacts
  readonly expected: { readonly [E in Environment]: Expectation }
}

const vault = (environment: Environment, address: string, path: string) => ({
  ...secure(environment).secrets,
  backend: "vault" as const,
  aws: Option.none(),
  vault: Option.some({
    address,
    auth: { method: "token" as const, token: Redacted.make("s.token") },
    path,
    namespace: Option.none(),
    caCert: Option.none(),
    redirectHosts: [],
    database: Option.none()
  })
})

const rdsIam = (environment: Environment): DbSettings => ({
  ...secure(environment),
  secrets: { ...secure(environment).secrets, backend: "rds-iam" }
})

const cases: ReadonlyArray<Case> = [
  {
    rule: "rds-iam-tls",
    variable: "DB_SSL",
    fix: "set DB_SSL=true and DB_SSL_REJECT_UNAUTHORIZED=true",
    settings: (env) => ({ ...rdsIam(env), tls: { ...rdsIam(env).tls, enabled: false } }),
    expected: { production: "refuse", staging: "refuse", development: "refuse", test: "refuse" }
  },
  {
    rule: "rds-iam-tls",
    variable: "DB_SSL_REJECT_UNAUTHORIZED",
    fix: "set DB_SSL=true and DB_SSL_REJECT_UNAUTHORIZED=true",
    settings: (env) => ({ ...rdsIam(env), tls: { ...rdsIam(env).tls, rejectUnauthorized: false } }),
    expected: { production: "refuse", staging: "refuse", development: "refuse", test: "refuse" }
  },
  {
    // RDS asks for the IAM token in cleartext; rds-iam-tls holds it to verified TLS
    rule: "password-auth-method",
    variable: "DB_REQUIRE_AUTH",
    fix: "",
    settings: (env) => ({ ...rdsIam(env), auth: { ...rdsIam(env).auth, requireAuth: ["password"] } }),
    expected: { production: "pass", staging: "pass", development: "pass", test: "pass" }
  },
  {
    rule: "password-auth-method",
    variable: "DB_REQUIRE_AUTH",
    fix: "password_encryption = scram-sha-256",
    settings: (env) => ({ ...secure(env), auth: { ...secure(env).auth, requireAuth: ["scram-sha-256", "md5"] } }),
    expected: { production: "refuse", staging: "refuse", development: "pass", test: "pass" }
  },
  {
    rule: "password-auth-method",
    variable: "DB_REQUIRE_AUTH",
    fix: "DB_REQUIRE_AUTH=scram-sha-256,none",
    settings: (env) => ({ ...secure(env), auth: { ...secure(env).auth, requireAuth: ["password"] } }),
    expected: { production: "refuse", staging: "refuse", development: "pass", test: "pass" }
  },
  {
    rule: "channel-binding",
    variable: "DB_CHANNEL_BINDING",
    fix: "Use prefer (the default) or require",
    settings: (env) => ({ ...secure(env), auth: { ...secure(env).auth, channelBinding: "disable" } }),
    expected: { production: "refuse", staging: "refuse", development: "pass", test: "pass" }
  },
  {
    rule: "public-ca-trust",
    variable: "DB_SSL_CA",
    fix: "Set DB_SSL_CA to the CA that issues your database certificates",
    settings: (env) => ({ ...secure(env), tls: { ...secure(env).tls, ca: Option.none() } }),
    facts: () => ({ extraCaCerts: "/etc/ssl/corporate-ca.pem" }),
    expected: { production: "warn", staging: "warn", development: "pass", test: "pass" }
  },
  {
    rule: "tls-required",
    variable: "DB_SSL",
    fix: "Set DB_SSL=true",
    settings: (env) => ({ ...secure(env), tls: { ...secure(env).tls, enabled: false } }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "certificate-validation",
    variable: "DB_SSL_REJECT_UNAUTHORIZED",
    fix: "Set DB_SSL_REJECT_UNAUTHORIZED=true",
    settings: (env) => ({ ...secure(env), tls: { ...secure(env).tls, rejectUnauthorized: false } }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "tls-min-version",
    variable: "DB_SSL_MIN_VERSION",
    fix: "Set DB_SSL_MIN_VERSION=TLSv1.2",
    settings: (env) => ({ ...secure(env), tls: { ...secure(env).tls, minVersion: "TLSv1.1" } }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "secrets-backend-env",
    variable: "SECRETS_BACKEND",
    fix: "Set SECRETS_BACKEND=aws-secrets-manager",
    settings: (env) => ({ ...secure(env), secrets: { ...secure(env).secrets, backend: "env", aws: Option.none() } }),
    expected: { production: "refuse", staging: "warn", development: "warn", test: "warn" }
  },
  {
    rule: "password-in-environment",
    variable: "DB_PASSWORD",
    fix: "store the password in the secrets manager",
    settings: (env) => ({ ...secure(env), password: Option.some(Redacted.make("pw")) }),
    expected: { production: "refuse", staging: "warn", development: "warn", test: "warn" }
  },
  {
    rule: "dotenv-credentials",
    variable: "DB_PASSWORD",
    fix: "keep passwords, tokens and keys in the secrets manager",
    settings: secure,
    // as DbConfig.layer reports it: loaded in development and test, never elsewhere
    facts: (env) => ({
      dotEnv: { path: ".env", loaded: env === "development" || env === "test", credentials: ["DB_PASSWORD"] }
    }),
    expected: { production: "refuse", staging: "warn", development: "pass", test: "pass" }
  },
  {
    rule: "secret-path-environment",
    variable: "SECRETS_PREFIX",
    fix: "Point SECRETS_PREFIX at this environment's secrets",
    settings: (env) => ({ ...secure(env), secrets: { ...secure(env).secrets, prefix: `takumi/${other(env)}/` } }),
    expected: { production: "refuse", staging: "refuse", development: "refuse", test: "refuse" }
  },
  {
    rule: "secret-path-environment",
    variable: "VAULT_PATH",
    fix: "Point VAULT_PATH at this environment's secrets",
    settings: (env) => ({
      ...secure(env),
      secrets: vault(env, "https://vault.example.com:8200", `secret/takumi/${other(env)}`)
    }),
    expected: { production: "refuse", staging: "refuse", development: "refuse", test: "refuse" }
  },
  {
    rule: "secret-path-environment",
    variable: "VAULT_NAMESPACE",
    fix: "Point VAULT_NAMESPACE at this environment's secrets",
    settings: (env) => {
      const secrets = vault(env, "https://vault.example.com:8200", `secret/takumi/${env}`)
      return {
        ...secure(env),
        secrets: { ...secrets, vault: Option.map(secrets.vault, (v) => ({ ...v, namespace: Option.some(`admin/${other(env)}`) })) }
      }
    },
    expected: { production: "refuse", staging: "refuse", development: "refuse", test: "refuse" }
  },
  {
    rule: "secrets-transport-tls",
    variable: "VAULT_ADDR",
    fix: "Use an https:// address",
    settings: (env) => ({ ...secure(env), secrets: vault(env, "http://vault.example.com:8200", `secret/takumi/${env}`) }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "secrets-transport-tls",
    variable: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    fix: "Use an https:// address",
    settings: (env) => ({
      ...secure(env),
      secrets: {
        ...secure(env).secrets,
        aws: Option.some({ region: "us-east-1", endpoint: Option.some("http://127.0.0.1:4566"), maxAttempts: 3, caBundle: Option.none() })
      }
    }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "tls-verification-override",
    variable: "NODE_TLS_REJECT_UNAUTHORIZED",
    fix: "Unset NODE_TLS_REJECT_UNAUTHORIZED",
    settings: secure,
    facts: () => ({ verificationOverrides: ["NODE_TLS_REJECT_UNAUTHORIZED"] }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "tls-verification-override",
    variable: "VAULT_SKIP_VERIFY",
    fix: "Unset VAULT_SKIP_VERIFY",
    settings: secure,
    facts: () => ({ verificationOverrides: ["VAULT_SKIP_VERIFY"] }),
    expected: { production: "refuse", staging: "refuse", development: "warn", test: "warn" }
  },
  {
    rule: "credential-max-age",
    variable: "DB_CREDENTIAL_MAX_AGE",
    fix: "Set DB_CREDENTIAL_MAX_AGE to 90 or less",
    settings: (env) => ({ ...secure(env), alerts: { ...secure(env).alerts, credentialMaxAge: Duration.days(91) } }),
    expected: { production: "refuse", staging: "warn", development: "warn", test: "warn" }
  },
  {
    rule: "credential-max-age",
    variable: "DB_CREDENTIAL_MAX_AGE",
    fix: "",
    settings: (env) => ({ ...secure(env), alerts: { ...secure(env).alerts, credentialMaxAge: Duration.days(90) } }),
    expected: { production: "pass", staging: "pass", development: "pass", test: "pass" }
  }
]

const environments: ReadonlyArray<Environment> = ["production", "staging", "development", "test"]

const table = cases.flatMap((c) =>
  environments.map((environment) => [c.rule, c.variable, environment, c.expected[environment], c] as const)
)

describe("SecurityPolicy", () => {
  it.effect.each(environments)("passes secure settings in %s without a warning", (environment) =>
    Effect.gen(function*() {
      const { exit, logs } = yield* withLogs(SecurityPolicy.check(secure(environment)))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(logs).toEqual([])
    }))

  it.effect.each(table)("rule %s (%s) in %s: %s", ([rule, variable, environment, expected, c]) =>
    Effect.gen(function*() {
      const settings = c.settings(environment)
      const facts = c.facts?.(environment) ?? {}
      const { exit, logs } = yield* withLogs(SecurityPolicy.check(settings, facts))
      const warnings = logs.filter((line) => line.level === "WARN")
      if (expected === "refuse") {
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(SecurityPolicy.check(settings, facts))
        expect(error).toBeInstanceOf(InsecureConfiguration)
        expect(error).toMatchObject({ rule, variable, environment })
        expect(error.message).toContain(variable)
        expect(error.message).toContain(c.fix)
      } else if (expected === "warn") {
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]?.annotations).toMatchObject({ rule, variable })
      } else {
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(warnings).toEqual([])
      }
    }))

  it.effect("refuses TLS off in production with the requirements' message", () =>
    Effect.gen(function*() {
      const settings = { ...secure("production"), tls: { ...secure("production").tls, enabled: false } }
      const error = yield* Effect.flip(SecurityPolicy.check(settings))
      expect(error.message).toContain(
        "CRITICAL SECURITY ERROR: Database SSL/TLS is REQUIRED in production. Set DB_SSL=true"
      )
    }))

  it.effect("names the first refused rule and counts the others in the message", () =>
    Effect.gen(function*() {
      const base = secure("production")
      const settings: DbSettings = {
        ...base,
        tls: { ...base.tls, enabled: false },
        password: Option.some(Redacted.make("pw")),
        secrets: { ...base.secrets, backend: "env", aws: Option.none() }
      }
      const error = yield* Effect.flip(SecurityPolicy.check(settings))
      expect(error.rule).toBe("tls-required")
      expect(error.message).toContain("2 more refused: secrets-backend-env on SECRETS_BACKEND, password-in-environment on DB_PASSWORD")
      expect(SecurityPolicy.evaluate(settings).map((finding) => finding.rule)).toEqual([
        "tls-required",
        "secrets-backend-env",
        "password-in-environment"
      ])
    }))

  it("reports a password from DATABASE_URL under that variable", () => {
    const settings = { ...secure("production"), password: Option.some(Redacted.make("pw")) }
    const [finding] = SecurityPolicy.evaluate(settings, { passwordVariable: "DATABASE_URL" })
    expect(finding).toMatchObject({ rule: "password-in-environment", variable: "DATABASE_URL", severity: "refuse" })
  })

  it("does not warn about DB_PASSWORD in development when the env backend reads it", () => {
    const settings = testSettings({ environment: "development", password: Option.some(Redacted.make("pw")) })
    expect(SecurityPolicy.evaluate(settings).map((finding) => finding.rule)).toEqual(["secrets-backend-env"])
  })

  it.each([
    ["takumi/production/", "production", Option.none()],
    ["takumi/staging/", "production", Option.some("staging")],
    ["secret/takumi-dev/db", "production", Option.some("development")],
    ["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", "staging", Option.some("production")],
    ["secret/Takumi/TEST", "production", Option.some("test")],
    ["takumi/contest/", "production", Option.none()],
    ["secret/takumi/production", "test", Option.some("production")],
    // percent-encoded, as Vault decodes it
    ["secret/takumi/%70roduction", "staging", Option.some("production")],
    ["secret/takumi/%2570rod", "staging", Option.some("production")],
    // Vault namespaces
    ["production", "staging", Option.some("production")],
    ["admin/prod", "staging", Option.some("production")],
    // aliases with digits, longer words of a canonical name, other names
    ["secret/takumi/prod2", "staging", Option.some("production")],
    ["secret/takumi/productionold", "staging", Option.some("production")],
    ["secret/takumi/live", "development", Option.some("production")],
    ["secret/takumi/stg01", "production", Option.some("staging")],
    ["secret/takumi/qa", "production", Option.some("test")],
    ["secret/takumi/uat", "production", Option.some("staging")],
    // not an environment name: a word that merely starts like an alias
    ["secret/takumi/testimonials", "production", Option.none()],
    ["secret/takumi/livestock", "staging", Option.none()],
    ["secret/takumi/preprod", "staging", Option.none()],
    ["secret/takumi/development", "development", Option.none()]
  ] as const)("finds in %s, under NODE_ENV=%s, the foreign environment %s", (path, own, expected) => {
    expect(SecurityPolicy.foreignEnvironmentIn(path, own)).toEqual(expected)
  })
})
