/**
 * The `takumi-db` command line: `pool-size`, `doctor`, `audit-logging check|enable`. A thin
 * shell over `PoolSize`, `Doctor` and `AuditLogging`: parse arguments (`@effect/cli`), run the
 * function, print its report with `Console.log`, fail with a typed error when the exit code must
 * be non-zero.
 *
 * Exit codes: 0 success; 1 a check failed or the program would not start (`DoctorRefused`,
 * `AuditLoggingIncomplete`, a startup error, ...); 2 the arguments are wrong.
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as Runtime from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type { PoolSizing } from "@takumi/config"
import { TakumiDb } from "@takumi/db"
import * as AuditLogging from "./AuditLogging.js"
import * as Doctor from "./Doctor.js"
import * as PoolSize from "./PoolSize.js"
import { UsageError } from "./UsageError.js"

/**
 * Every typed failure of the commands.
 *
 * @since 0.1.0
 * @category errors
 */
export type CliError =
  | UsageError
  | PoolSizing.InvalidPoolSizing
  | Doctor.DoctorRefused
  | AuditLogging.AuditLoggingIncomplete
  | AuditLogging.AuditLoggingNotPermitted
  | AuditLogging.AuditLoggingFailed
  | TakumiDb.StartupError

const print = (lines: ReadonlyArray<string>) => Console.log(lines.join("\n"))

const poolSize = Command.make(
  "pool-size",
  {
    maxConnections: Options.integer("max-connections").pipe(
      Options.withDescription("the server's max_connections (SHOW max_connections)"),
      Options.optional
    ),
    instances: Options.integer("instances").pipe(
      Options.withDescription("how many application instances share the server"),
      Options.optional
    ),
    headroom: Options.float("headroom").pipe(
      Options.withDescription("fraction of max_connections the application may use, in (0, 1]; default 0.8"),
      Options.optional
    ),
    preset: Options.choice("preset", ["development", "test", "staging", "production"]).pipe(
      Options.withDescription("print the pool preset of an environment"),
      Options.optional
    )
  },
  (request) => PoolSize.compute(request).pipe(Effect.map(PoolSize.render), Effect.flatMap(print))
).pipe(
  Command.withDescription(
    "Per-instance pool size: max_pool_size = (max_connections / instances) * 0.8, or an environment's preset."
  )
)

const doctor = Command.make(
  "doctor",
  {
    offline: Options.boolean("offline").pipe(
      Options.withDescription("check the configuration only; do not contact the secrets backend or the database")
    )
  },
  ({ offline }) =>
    Doctor.run({ offline }).pipe(
      Effect.tap((report) => print(Doctor.render(report))),
      Effect.flatMap(Doctor.requireHealthy)
    )
).pipe(
  Command.withDescription(
    "Load the configuration from the environment, list every security-policy finding, connect with the " +
      "secure stack and report the verified TLS posture or the startup error with its fix."
  )
)

const auditCheck = Command.make("check", {}, () =>
  AuditLogging.check.pipe(
    Effect.tap((report) => print(AuditLogging.renderReport(report))),
    Effect.flatMap(AuditLogging.requireCompliant),
    Effect.provide(TakumiDb.layer)
  )).pipe(
    Command.withDescription(
      "Report log_connections, log_disconnections and log_statement (want on, on, ddl or stricter); " +
        "exits 1 when any is missing."
    )
  )

const auditEnable = Command.make("enable", {}, () =>
  AuditLogging.enable.pipe(
    Effect.flatMap((enabled) => print(AuditLogging.renderEnabled(enabled))),
    Effect.provide(TakumiDb.layer)
  )).pipe(
    Command.withDescription(
      "ALTER SYSTEM SET the missing audit settings and pg_reload_conf(). Needs a superuser or, on PostgreSQL 15+, " +
        "a role granted ALTER SYSTEM ON PARAMETER log_connections, log_disconnections, log_statement and EXECUTE " +
        "on pg_reload_conf() (production refuses superuser connections: use such a role)."
    )
  )

const auditLogging = Command.make("audit-logging").pipe(
  Command.withDescription("Check or enable the PostgreSQL audit logging settings."),
  Command.withSubcommands([auditCheck, auditEnable])
)

const command = Command.make("takumi-db").pipe(
  Command.withDescription("Takumi DB: check a deployment's database configuration and server."),
  Command.withSubcommands([poolSize, doctor, auditLogging])
)

/**
 * Runs the command line `args` as given by Node (`process.argv`: runtime, script, then the
 * arguments). Logs go to standard error, warnings and above unless `--log-level` says otherwise.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (
  args: ReadonlyArray<string>
): Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> =>
  Command.run(command, { name: "takumi-db", version: "0.1.0" })(args).pipe(
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
  )

/**
 * The process exit code for a failure of {@link run}: 2 for arguments that do not parse or do
 * not fit together, 1 for everything else.
 *
 * @since 0.1.0
 * @category commands
 */
export const exitCode = (error: unknown): number =>
  ValidationError.isValidationError(error) || error instanceof UsageError ? 2 : 1

/**
 * The message to print for a failure of {@link run}, if any: `@effect/cli` has already printed
 * argument errors with the usage; every other error prints its own `message` (which says how to
 * fix it and never contains a secret).
 *
 * @since 0.1.0
 * @category commands
 */
export const failureMessage = (error: unknown): string | undefined => {
  if (ValidationError.isValidationError(error)) return undefined
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    const tag = "_tag" in error && typeof error._tag === "string" ? `${error._tag}: ` : ""
    return `${tag}${error.message}`
  }
  return String(error)
}

/**
 * {@link run} with failures printed to standard error: the error's message, or the whole cause
 * for a defect. For `NodeRuntime.runMain` with `disableErrorReporting` and {@link teardown}.
 *
 * @since 0.1.0
 * @category commands
 */
export const main = (
  args: ReadonlyArray<string>
): Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> =>
  run(args).pipe(
    Effect.tapErrorCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      return Option.match(Cause.failureOption(cause), {
        onNone: () => Console.error(Cause.pretty(cause)),
        onSome: (error) => {
          const message = failureMessage(error)
          return message === undefined ? Effect.void : Console.error(message)
        }
      })
    })
  )

/**
 * Maps the program's exit to the process exit code (see {@link exitCode}; 130 when interrupted,
 * as shells report Ctrl+C).
 *
 * @since 0.1.0
 * @category commands
 */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit)) return onExit(0)
  if (Cause.isInterruptedOnly(exit.cause)) return onExit(130)
  onExit(Option.match(Cause.failureOption(exit.cause), { onNone: () => 1, onSome: exitCode }))
}
