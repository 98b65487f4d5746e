/**
 * Shared helpers for the secrets tests: hand-built `DbSettings` and a logger that captures
 * every line so tests can assert on warnings and scan for leaked secrets.
 */
import {
  type DbSettings,
  type SecretsSettings,
  testSettings,
  type TestSettingsInput,
  type VaultAuth
} from "@takumi/config"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

export const settings = (secrets: Partial<SecretsSettings> = {}, overrides: TestSettingsInput = {}): DbSettings =>
  testSettings({
    ...overrides,
    secrets: { requestTimeout: Duration.millis(300), ...secrets }
  })

export const redacted = (value: string) => Redacted.make(value)

/** A logger that keeps every line (logfmt and structured JSON) in `lines`. */
export const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make<unknown, void>((options) => {
    lines.push(Logger.logfmtLogger.log(options))
    lines.push(JSON.stringify(Logger.structuredLogger.log(options)))
  })
  const layer = Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  return { lines, layer }
}

/** Settings for the AWS backend pointed at a Secrets Manager double. */
export const awsSettings = (
  endpoint: string,
  options: {
    readonly maxAttempts?: number
    readonly requestTimeoutMs?: number
    /** `AWS_CA_BUNDLE` as inline PEM. */
    readonly caPem?: string
    /** `AWS_CA_BUNDLE` as a file path. */
    readonly caPath?: string
  } = {}
): DbSettings =>
  settings({
    backend: "aws-secrets-manager",
    prefix: "takumi/test/",
    requestTimeout: Duration.millis(options.requestTimeoutMs ?? 300),
    aws: Option.some({
      region: "us-east-1",
      endpoint: Option.some(endpoint),
      maxAttempts: options.maxAttempts ?? 1,
      caBundle: options.caPath !== undefined
        ? Option.some({ _tag: "File", path: options.caPath })
        : options.caPem !== undefined
        ? Option.some({ _tag: "Inline", pem: Redacted.make(options.caPem) })
        : Option.none()
    })
  })

/** Settings for the Vault backend pointed at a Vault double. */
export const vaultSettings = (
  address: string,
  options: {
    readonly token: string
    /** a login instead of the static `token` */
    readonly auth?: VaultAuth
    readonly path?: string
    readonly namespace?: string
    readonly caPem?: string
    readonly caPath?: string
    readonly requestTimeoutMs?: number
    readonly redirectHosts?: ReadonlyArray<string>
  }
): DbSettings =>
  settings({
    backend: "vault",
    requestTimeout: Duration.millis(options.requestTimeoutMs ?? 300),
    vault: Option.some({
      address,
      auth: options.auth ?? { method: "token", token: Redacted.make(options.token) },
      path: options.path ?? "secret/takumi/test",
      namespace: Option.fromNullable(options.namespace),
      caCert: options.caPath !== undefined
        ? Option.some({ _tag: "File", path: options.caPath })
        : options.caPem !== undefined
        ? Option.some({ _tag: "Inline", pem: Redacted.make(options.caPem) })
        : Option.none(),
      redirectHosts: options.redirectHosts ?? []
    })
  })
