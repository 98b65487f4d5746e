/**
 * `takumi-db audit-logging`: the server settings the requirements' "Audit Logging" section asks
 * for — `log_connections = on`, `log_disconnections = on`, `log_statement = ddl` — checked on a
 * connection of the normal secure stack, and enabled with the requirements' own statements:
 *
 * ```sql
 * ALTER SYSTEM SET log_connections = 'on';
 * ALTER SYSTEM SET log_disconnections = 'on';
 * ALTER SYSTEM SET log_statement = 'ddl';
 * SELECT pg_reload_conf();
 * ```
 *
 * Enabling needs a role allowed to run them: a superuser, or (PostgreSQL 15+) a role granted
 * `ALTER SYSTEM ON PARAMETER` for the three settings and `EXECUTE` on `pg_reload_conf()`. In
 * production the connection posture check refuses superusers, so production uses such a granted
 * role (see {@link grantStatements}).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { DbConfig } from "@takumi/config"

/**
 * One audit setting: its name, the value `enable` sets and every value that satisfies the check
 * (`log_statement = mod` or `all` log DDL too, so they pass, and `enable` never lowers them).
 *
 * @since 0.1.0
 * @category models
 */
export interface AuditParameter {
  readonly name: "log_connections" | "log_disconnections" | "log_statement"
  readonly wanted: string
  readonly accepted: ReadonlyArray<string>
}

/**
 * The settings, in the order of the requirements.
 *
 * @since 0.1.0
 * @category constants
 */
export const parameters: ReadonlyArray<AuditParameter> = [
  { name: "log_connections", wanted: "on", accepted: ["on"] },
  { name: "log_disconnections", wanted: "on", accepted: ["on"] },
  { name: "log_statement", wanted: "ddl", accepted: ["ddl", "mod", "all"] }
]

/**
 * What the server grants a non-superuser role so that it may run `enable` (PostgreSQL 15+). Run
 * once as a superuser, e.g. `psql` on the database host.
 *
 * @since 0.1.0
 * @category constructors
 */
export const grantStatements = (role: string): ReadonlyArray<string> => {
  const quoted = `"${role.replaceAll("\"", "\"\"")}"`
  return [
    `GRANT ALTER SYSTEM ON PARAMETER ${parameters.map((p) => p.name).join(", ")} TO ${quoted};`,
    `GRANT EXECUTE ON FUNCTION pg_reload_conf() TO ${quoted};`
  ]
}

/**
 * One setting as the server reports it for a new session of the configured role.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuditSetting extends AuditParameter {
  readonly value: string
  readonly compliant: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AuditLoggingReport {
  readonly host: string
  readonly port: number
  readonly settings: ReadonlyArray<AuditSetting>
  /** every setting compliant */
  readonly compliant: boolean
}

/**
 * What `enable` did: the statements it ran (none when everything was already compliant).
 *
 * @since 0.1.0
 * @category models
 */
export interface AuditLoggingEnabled {
  readonly host: string
  readonly port: number
  readonly statements: ReadonlyArray<string>
  /** the settings before the change */
  readonly before: AuditLoggingReport
}

/**
 * The role may not change the server's configuration: PostgreSQL refused `ALTER SYSTEM` or
 * `pg_reload_conf()` with SQLSTATE 42501 (insufficient privilege).
 *
 * @since 0.1.0
 * @category errors
 */
export class AuditLoggingNotPermitted extends Schema.TaggedError<AuditLoggingNotPermitted>()(
  "AuditLoggingNotPermitted",
  {
    host: Schema.String,
    port: Schema.Number,
    /** the role the statement ran as (`DB_USER`) */
    user: Schema.String,
    /** the refused statement */
    statement: Schema.String,
    /** the server's reason, e.g. `permission denied to set parameter "log_connections"` */
    reason: Schema.String,
    /** statements that succeeded before the refusal (written to postgresql.auto.conf, not yet reloaded) */
    applied: Schema.Array(Schema.String)
  }
) {
  override get message(): string {
    const applied = this.applied.length === 0
      ? ""
      : `${this.applied.map((s) => `\`${s}\``).join(", ")} succeeded and take effect at the next configuration ` +
        `reload or restart. `
    return `Role ${this.user} may not change the audit settings of the PostgreSQL server at ${this.host}:${this.port}: ` +
      `\`${this.statement}\` was refused (42501 ${this.reason}). ${applied}` +
      `ALTER SYSTEM needs a superuser or, on PostgreSQL 15+, a role granted the right by a superuser: ` +
      `${grantStatements(this.user).join(" ")} ` +
      `In production the connection check refuses superusers, so grant these to the administration role you ` +
      `run \`takumi-db audit-logging enable\` as. On a managed service (RDS, Cloud SQL, Azure) set the three ` +
      `parameters in its parameter group or flags instead.`
  }
}

/**
 * A statement of the check or of `enable` failed for another reason than privileges.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuditLoggingFailed extends Schema.TaggedError<AuditLoggingFailed>()("AuditLoggingFailed", {
  host: Schema.String,
  port: Schema.Number,
  statement: Schema.String,
  /** SQLSTATE or Node error code, when there is one */
  code: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : `${this.code} `
    return `\`${this.statement}\` failed on the PostgreSQL server at ${this.host}:${this.port} (${code}${this.reason}). ` +
      `Check the server's log; the connection itself was verified at startup.`
  }
}

/**
 * The check found settings below the requirements (the command exits non-zero).
 *
 * @since 0.1.0
 * @category errors
 */
export class AuditLoggingIncomplete extends Schema.TaggedError<AuditLoggingIncomplete>()("AuditLoggingIncomplete", {
  host: Schema.String,
  port: Schema.Number,
  /** `name=value` of every setting that is not compliant */
  settings: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Audit logging is incomplete on ${this.host}:${this.port} (${this.settings.join(", ")}). ` +
      `Run \`takumi-db audit-logging enable\` as a role allowed to ALTER SYSTEM, or set log_connections = on, ` +
      `log_disconnections = on and log_statement = ddl in postgresql.conf and reload.`
  }
}

const describeCause = (error: SqlError): { readonly code?: string; readonly reason: string } => {
  const cause: unknown = error.cause
  if (typeof cause === "object" && cause !== null) {
    const code = "code" in cause && typeof cause.code === "string" ? cause.code : undefined
    const reason = "message" in cause && typeof cause.message === "string" ? cause.message : error.message
    return code === undefined ? { reason } : { code, reason }
  }
  return { reason: error.message }
}

const checkStatement = `SELECT ${
  parameters.map((p) => `current_setting('${p.name}') AS ${p.name}`).join(", ")
}`

const failed = (host: string, port: number, statement: string) => (error: SqlError) =>
  new AuditLoggingFailed({ host, port, statement, ...describeCause(error) })

/**
 * Reads the three settings with `current_setting` on a connection of the configured stack. The
 * values are those of a session of this role: `log_connections` and `log_disconnections` are
 * fixed when a session starts, so a pool opened before a change still shows the old values.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check: Effect.Effect<AuditLoggingReport, AuditLoggingFailed, SqlClient.SqlClient | DbConfig> = Effect.gen(
  function*() {
    const { host, port } = yield* DbConfig
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<Record<string, unknown>>(checkStatement).pipe(
      Effect.mapError(failed(host, port, checkStatement))
    )
    const row = rows[0] ?? {}
    const settings = parameters.map((parameter): AuditSetting => {
      const raw = row[parameter.name]
      const value = typeof raw === "string" ? raw : String(raw)
      return { ...parameter, value, compliant: parameter.accepted.includes(value) }
    })
    return { host, port, settings, compliant: settings.every((s) => s.compliant) }
  }
).pipe(Effect.withSpan("AuditLogging.check"))

/**
 * The check as a failure when anything is missing: for the command's exit code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireCompliant = (report: AuditLoggingReport): Effect.Effect<AuditLoggingReport, AuditLoggingIncomplete> =>
  report.compliant
    ? Effect.succeed(report)
    : Effect.fail(
      new AuditLoggingIncomplete({
        host: report.host,
        port: report.port,
        settings: report.settings.filter((s) => !s.compliant).map((s) => `${s.name}=${s.value}`)
      })
    )

/**
 * Runs `ALTER SYSTEM SET` for each setting that is not yet compliant (a stricter
 * `log_statement`, `mod` or `all`, is kept) and then `SELECT pg_reload_conf()`. New sessions
 * log connections and disconnections from then on; `log_statement` applies to running sessions
 * too. A role without the right fails with `AuditLoggingNotPermitted`, which names the grants.
 *
 * @since 0.1.0
 * @category constructors
 */
export const enable: Effect.Effect<
  AuditLoggingEnabled,
  AuditLoggingNotPermitted | AuditLoggingFailed,
  SqlClient.SqlClient | DbConfig
> = Effect.gen(function*() {
  const { host, port, user } = yield* DbConfig
  const sql = yield* SqlClient.SqlClient
  const before = yield* check
  const changes = before.settings
    .filter((s) => !s.compliant)
    .map((s) => `ALTER SYSTEM SET ${s.name} = '${s.wanted}'`)
  const statements = changes.length === 0 ? [] : [...changes, "SELECT pg_reload_conf()"]
  const applied: Array<string> = []
  for (const statement of statements) {
    yield* sql.unsafe(statement).pipe(
      Effect.mapError((error) => {
        const { code, reason } = describeCause(error)
        return code === "42501"
          ? new AuditLoggingNotPermitted({ host, port, user, statement, reason, applied: applied.slice() })
          : failed(host, port, statement)(error)
      })
    )
    applied.push(statement)
    yield* Effect.logInfo(`ran ${statement}`).pipe(Effect.annotateLogs({ host, port, user }))
  }
  return { host, port, statements, before }
}).pipe(Effect.withSpan("AuditLogging.enable"))

/**
 * The check as lines: one per setting with its value, what is wanted and a verdict.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderReport = (report: AuditLoggingReport): ReadonlyArray<string> => [
  `Audit logging on ${report.host}:${report.port}:`,
  ...report.settings.map((s) =>
    `  ${s.compliant ? "ok     " : "MISSING"} ${s.name} = ${s.value} (want ${s.accepted.join(" or ")})`
  ),
  report.compliant
    ? "Audit logging is complete."
    : "Audit logging is incomplete: run `takumi-db audit-logging enable` as a role allowed to ALTER SYSTEM."
]

/**
 * What `enable` did, as lines.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderEnabled = (enabled: AuditLoggingEnabled): ReadonlyArray<string> =>
  enabled.statements.length === 0
    ? [`Audit logging on ${enabled.host}:${enabled.port} is already complete; nothing changed.`]
    : [
      `Audit logging on ${enabled.host}:${enabled.port}: ran`,
      ...enabled.statements.map((s) => `  ${s};`),
      "New sessions log connections and disconnections; log_statement applies at once. " +
      "Verify with `takumi-db audit-logging check`."
    ]
