/**
 * The `takumi-db` command line: `pool-size`, `doctor`, `audit-logging check|enable`. A thin
 * shell over `PoolSize`, `Doctor` and `AuditLogging`: parse arguments (`@effect/cli`), run the
 * function, print its report with `Console.log`, fail with a typed error when the exit code must
 * be non-zero.
 *
 * Exit codes: 0 success; 1 a check failed or the program would not start (`DoctorRefused`,
 * `AuditLoggingIncomplete`, `PresetDoesNotFit`, a startup error, ...); 2 the arguments are wrong
 * (they do not parse, do not fit together, or are out of range: `InvalidPoolSizing`).
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as Runtime from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { PoolSizing } from "@takumi/config"
import { TakumiDb } from "@takumi/db"
import * as AuditLogging from "./AuditLogging.js"
import * as Doctor from "./Doctor.js"
import * as PoolerBudget from "./PoolerBudget.js"
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
  | PoolSize.PresetDoesNotFit
  | PoolerBudget.PoolerBudgetExceeded
  | Doctor.DoctorRefused
  | AuditLogging.AuditLoggingIncomplete
  | AuditLogging.AuditLoggingNotPermitted
  | AuditLogging.AuditLoggingFailed
  | TakumiDb.StartupError

const print = (lines: ReadonlyArray<string>) => Console.log(lines.join("\n"))

const poolerOptions = {
  pooler: Options.choice("pooler", ["pgbouncer"]).pipe(
    Options.withDescription("a PgBouncer sits between the instances and the server (DB_POOLER)"),
    Options.optional
  ),
  maxClientConn: Options.integer("max-client-conn").pipe(
    Options.withDescription("PgBouncer's max_client_conn"),
    Options.optional
  ),
  defaultPoolSize: Options.integer("default-pool-size").pipe(
    Options.withDescription("PgBouncer's default_pool_size (server connections per user/database pair)"),
    Options.optional
  ),
  pools: Options.integer("pools").pipe(
    Options.withDescription("user/database pairs PgBouncer pools for; default 1"),
    Options.optional
  ),
  poolMax: Options.integer("pool-max").pipe(
    Options.withDescription("each instance's DB_POOL_MAX, to check against max_client_conn (default: the --preset's)"),
    Options.optional
  )
}

/** The pooler budget's inputs: `--pool-max`, else the `--preset`'s `DB_POOL_MAX`. */
const poolerRequest = (
  request: PoolSize.PoolSizeRequest & Omit<PoolerBudget.PoolerBudgetRequest, "poolMax"> & {
    readonly poolMax: Option.Option<number>
  }
): PoolerBudget.PoolerBudgetRequest => ({
  ...request,
  poolMax: Option.orElse(request.poolMax, () => Option.map(request.preset, (env) => PoolSizing.preset(env).max))
})

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
    ),
    ...poolerOptions
  },
  (request): Effect.Effect<void, CliError> =>
    Option.isSome(request.pooler)
      ? PoolerBudget.compute(poolerRequest(request)).pipe(
        Effect.tap((budget) => print(PoolerBudget.render(budget))),
        Effect.flatMap(PoolerBudget.requireFit),
        Effect.asVoid
      )
      : PoolSize.compute(request).pipe(
        Effect.tap((report) => print(PoolSize.render(report))),
        Effect.flatMap(PoolSize.requireFit),
        Effect.asVoid
      )
).pipe(
  Command.withDescription(
    "Per-instance pool size: max_pool_size = (max_connections / instances) * 0.8, or an environment's preset; " +
      "with --pooler pgbouncer, instances x DB_POOL_MAX against max_client_conn and default_pool_size against max_connections."
  )
)

const doctor = Command.make(
  "doctor",
  {
    offline: Options.boolean("offline").pipe(
      Options.withDescription("check the configuration only; do not contact the secrets backend or the database")
    ),
    json: Options.boolean("json").pipe(
      Options.withDescription("print the report as one JSON document (same exit codes; never a secret)")
    ),
    compareEnvironment: Options.choice("compare-environment", ["development", "test", "staging", "production"]).pipe(
      Options.withDescription(
        "also read that environment's password secret with the same backend and access (NODE_ENV's name " +
          "substituted in SECRETS_PREFIX / VAULT_PATH) and report whether the two passwords are equal, printing neither"
      ),
      Options.optional
    )
  },
  ({ compareEnvironment, json, offline }) =>
    Doctor.run({ offline, ...Option.match(compareEnvironment, { onNone: () => ({}), onSome: (other) => ({ compareEnvironment: other }) }) }).pipe(
      Effect.tap((report) =>
        json ? Console.log(JSON.stringify(Doctor.toJson(report), null, 2)) : print(Doctor.render(report))
      ),
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
 * What the terminal is: `main.ts` fills it in from `process.stdout.isTTY` / `process.stderr.isTTY`.
 * Colour is written to a stream only when it is a terminal and `NO_COLOR` is unset or empty
 * (https://no-color.org).
 *
 * @since 0.1.0
 * @category models
 */
export interface Terminal {
  readonly stdoutIsTerminal: boolean
  readonly stderrIsTerminal: boolean
}

// SGR sequences only: @effect/cli's help and error documents colour with nothing else
const ansiStyle = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g")

const plain = (parts: ReadonlyArray<unknown>): Array<unknown> =>
  parts.map((part) => (typeof part === "string" ? part.replace(ansiStyle, "") : part))

/** The console with colour removed from the streams that must not get any. */
const withoutColour = (base: Console.Console, stdout: boolean, stderr: boolean): Console.Console => {
  const out = (f: (...parts: ReadonlyArray<unknown>) => Effect.Effect<void>) => (...parts: ReadonlyArray<unknown>) =>
    f(...(stdout ? plain(parts) : parts))
  const err = (f: (...parts: ReadonlyArray<unknown>) => Effect.Effect<void>) => (...parts: ReadonlyArray<unknown>) =>
    f(...(stderr ? plain(parts) : parts))
  const unsafeOut = (f: (...parts: ReadonlyArray<unknown>) => void) => (...parts: ReadonlyArray<unknown>) =>
    f(...(stdout ? plain(parts) : parts))
  const unsafeErr = (f: (...parts: ReadonlyArray<unknown>) => void) => (...parts: ReadonlyArray<unknown>) =>
    f(...(stderr ? plain(parts) : parts))
  return {
    ...base,
    log: out(base.log),
    info: out(base.info),
    debug: out(base.debug),
    error: err(base.error),
    warn: err(base.warn),
    unsafe: {
      ...base.unsafe,
      log: unsafeOut((...parts) => base.unsafe.log(...parts)),
      info: unsafeOut((...parts) => base.unsafe.info(...parts)),
      debug: unsafeOut((...parts) => base.unsafe.debug(...parts)),
      error: unsafeErr((...parts) => base.unsafe.error(...parts)),
      warn: unsafeErr((...parts) => base.unsafe.warn(...parts))
    }
  }
}

const noColour = Config.string("NO_COLOR").pipe(
  Config.map((value) => value !== ""),
  Config.withDefault(false)
)

const colourFor = <A, E, R>(terminal: Terminal, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.orElseSucceed(noColour, () => false), (disabled) =>
    Console.consoleWith((base) =>
      Effect.withConsole(
        effect,
        withoutColour(base, disabled || !terminal.stdoutIsTerminal, disabled || !terminal.stderrIsTerminal)
      )
    ))

/**
 * The only logger: logfmt on standard error. `Logger.remove(prettyLoggerDefault)` too, because
 * `NodeRuntime.runMain` swaps the default logger for the pretty one (on standard output) before
 * this runs, and replacing the default alone would then print every line twice.
 */
const stderrLogger = Layer.merge(
  Logger.remove(Logger.prettyLoggerDefault),
  Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))
)

/**
 * Runs the command line `args` as given by Node (`process.argv`: runtime, script, then the
 * arguments). Logs go to standard error only, warnings and above unless `--log-level` says
 * otherwise. Colour only on a terminal (see {@link Terminal}); without `terminal`, none.
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (
  args: ReadonlyArray<string>,
  terminal: Terminal = { stdoutIsTerminal: false, stderrIsTerminal: false }
): Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> =>
  colourFor(
    terminal,
    Command.run(command, { name: "takumi-db", version: "0.1.0" })(args).pipe(
      Logger.withMinimumLogLevel(LogLevel.Warning),
      Effect.provide(stderrLogger)
    )
  )

/**
 * The process exit code for a failure of {@link run}: 2 for arguments that do not parse or do
 * not fit together, 1 for everything else.
 *
 * @since 0.1.0
 * @category commands
 */
export const exitCode = (error: unknown): number =>
  // InvalidPoolSizing only ever comes from `pool-size`'s own arguments (`--instances 0`)
  ValidationError.isValidationError(error) || error instanceof UsageError ||
    error instanceof PoolSizing.InvalidPoolSizing
    ? 2
    : 1

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
  args: ReadonlyArray<string>,
  terminal?: Terminal
): Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.CliApp.Environment> =>
  run(args, terminal).pipe(
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
