/**
 * Helpers shared by the @takumi/config tests: decoding a given map of variables (never the
 * process environment), capturing log lines, and rendering an error every way a person or a
 * log pipeline might see it.
 */
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Ref from "effect/Ref"
import { inspect } from "node:util"
import { DbConfig, type LoadOptions } from "../src/index.js"

/** `DbConfig` decoded from exactly these variables (no dotenv file unless `options` says so). */
export const decode = (variables: Readonly<Record<string, string>>, options: LoadOptions = { dotEnv: false }) =>
  DbConfig.pipe(
    Effect.provide(
      DbConfig.layerFromEnvironment(options).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables)))))
      )
    )
  )

/** A minimal valid development environment. */
export const devBase: Readonly<Record<string, string>> = {
  NODE_ENV: "development",
  DB_HOST: "localhost",
  DB_USER: "app",
  DB_PASSWORD: "dev-password-123"
}

/**
 * A real CA certificate (EC P-256, valid until 2126; its key was thrown away), for variables whose
 * PEM is parsed when the configuration loads. Public material: nothing secret here.
 */
export const testCaPem = `-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUF1u1Spi6PXr5XHbHq/JmcL6hPhgwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVVGFrdW1pIGNvbmZpZyB0ZXN0IENBMCAXDTI2MTIwMjA1NTY0
OVoYDzIxMjYxMTA4MDU1NjQ5WjAgMR4wHAYDVQQDDBVUYWt1bWkgY29uZmlnIHRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQRsXkckf7/69GFOFI8f8cV
OPEW5RSDaRYGKAPm4zseQ49yls/v17FHc341LGJd+tlGV8Y0Y+VeSDwcsJqsGoH7
o1MwUTAdBgNVHQ4EFgQU0JN+qI4RYXiNf2gpN04DH2BWSkYwHwYDVR0jBBgwFoAU
0JN+qI4RYXiNf2gpN04DH2BWSkYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiBtpFqGYEA3uohoHAaCAU3CAvKFSqYfrFm8jq0VzibsIAIhALyO6IYs
OABdHw52Pv1nVZPdDzroLsxEWcfiqmi6++X2
-----END CERTIFICATE-----
`

/** A minimal valid (policy-compliant) production environment: its own CA, secrets from AWS. */
export const prodBase: Readonly<Record<string, string>> = {
  NODE_ENV: "production",
  DB_SSL_CA: testCaPem,
  DB_HOST: "db.example.com",
  DB_USER: "takumi_prod",
  DB_NAME: "takumi",
  SECRETS_BACKEND: "aws-secrets-manager",
  AWS_REGION: "us-east-1"
}

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** Runs `effect` and returns its exit together with every log line it wrote. */
export const withLogs = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines = yield* Ref.make<ReadonlyArray<LogLine>>([])
    const logger = Logger.make<unknown, void>(({ annotations, logLevel, message }) => {
      const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
      const record: Record<string, unknown> = {}
      for (const [key, value] of annotations) record[key] = value
      Effect.runSync(Ref.update(lines, (all) => [...all, { level: logLevel.label, message: text, annotations: record }]))
    })
    const exit = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Effect.exit)
    return { exit, logs: yield* Ref.get(lines) }
  })

/** Every way an error is commonly turned into text. */
export const renderings = (error: unknown): ReadonlyArray<string> => {
  const message = error instanceof Error ? error.message : ""
  return [
    message,
    String(error),
    JSON.stringify(error),
    inspect(error, { depth: 10 }),
    Cause.pretty(Cause.fail(error))
  ]
}
