/**
 * Shared helpers for the secrets tests: hand-built `DbSettings` and a logger that captures
 * every line so tests can assert on warnings and scan for leaked secrets.
 */
import type { DbSettings, SecretsSettings } from "@takumi/config"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

export const settings = (secrets: Partial<SecretsSettings> = {}, overrides: Partial<DbSettings> = {}): DbSettings => ({
  environment: "test",
  host: "db.internal",
  port: 5432,
  database: "takumi",
  user: "takumi_app",
  password: Option.none(),
  applicationName: "takumi-db",
  tls: {
    enabled: true,
    rejectUnauthorized: true,
    ca: Option.none(),
    cert: Option.none(),
    key: Option.none(),
    keyPassphrase: Option.none(),
    minVersion: "TLSv1.2"
  },
  pool: { min: 1, max: 3 },
  connectTimeout: Duration.millis(2000),
  idleTimeout: Duration.millis(30000),
  readReplica: Option.none(),
  failoverTimeout: Duration.millis(5000),
  secrets: {
    backend: "env",
    cacheTtl: Duration.minutes(5),
    maxStale: Duration.minutes(10),
    requestTimeout: Duration.millis(300),
    prefix: "takumi/test/",
    aws: Option.none(),
    vault: Option.none(),
    ...secrets
  },
  alerts: {
    failedAuthThreshold: 5,
    failedAuthWindow: Duration.minutes(5),
    poolUsageRatio: 0.9,
    slowQuery: Duration.seconds(5),
    certificateExpiry: Duration.days(30)
  },
  ...overrides
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
