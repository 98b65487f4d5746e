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
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { vi } from "vitest"

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
    readonly database?: { readonly role: string; readonly mount: string }
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
      redirectHosts: options.redirectHosts ?? [],
      database: Option.fromNullable(options.database)
    })
  })

// The real SDK signs every request with credentials from its default chain; the doubles do not
// check signatures, so static test credentials in the environment are enough.
export const stubTestCredentials = () => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
}

/**
 * For the rest of the scope, an environment in which the SDK's default credential chain finds
 * nothing: no AWS_* credentials, profile, web identity or container endpoint, empty shared
 * credentials and config files, and no EC2 instance metadata. The file's static test
 * credentials (`stubTestCredentials`) are all that is stubbed again when the scope closes.
 */
export const withoutCredentials = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-aws-empty-"))
    const credentialsFile = Path.join(dir, "credentials")
    const configFile = Path.join(dir, "config")
    Fs.writeFileSync(credentialsFile, "")
    Fs.writeFileSync(configFile, "")
    for (
      const name of [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN"
      ]
    ) vi.stubEnv(name, "")
    vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", credentialsFile)
    vi.stubEnv("AWS_CONFIG_FILE", configFile)
    vi.stubEnv("AWS_EC2_METADATA_DISABLED", "true")
    return dir
  }),
  (dir) =>
    Effect.sync(() => {
      vi.unstubAllEnvs()
      stubTestCredentials()
      Fs.rmSync(dir, { recursive: true, force: true })
    })
)
