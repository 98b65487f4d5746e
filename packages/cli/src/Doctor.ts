/**
 * `takumi-db doctor`: what a program with this environment would do at startup, explained.
 *
 * 1. Loads the configuration exactly as the program does (`DbConfig.load`: the active
 *    `ConfigProvider`, i.e. the process environment, and `.env` in development and test) and
 *    lists every security-policy finding (`SecurityPolicy.evaluate`): each refusal that stops the
 *    program, with its fix, and each relaxation the environment allows.
 * 2. Unless offline, builds the whole stack (`TakumiDb.layer`: secrets backend, TLS pool, startup
 *    check) and reports the verified posture — TLS version and cipher as PostgreSQL reports them
 *    for the session, the server certificate's validity, whether the role is a superuser — or the
 *    typed startup error with its fix.
 * 3. With several hosts in `DB_HOST`, checks each one on its own (the stack to that host alone:
 *    TLS, its certificate against its own name, its posture, primary or hot standby) and says
 *    which host `DB_TARGET_SESSION_ATTRS` would use, by the pool's own rules (`HostState`).
 *
 * Nothing printed ever contains a secret: settings are summarised field by field (never the
 * password, token, inline PEM or `DATABASE_URL`), and every error message is secret-free by
 * construction in the library.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as EffectConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  type ConfigError,
  DbConfig,
  type DbSettings,
  type Environment,
  type LoadBalanceHosts,
  type PemSource,
  SecurityPolicy,
  type ServerAddress,
  type TargetSessionAttrs
} from "@takumi/config"
import { HostState, PostureRule, RolePrivileges, TakumiDb } from "@takumi/db"
import type { SecretError, SecretMetadata } from "@takumi/secrets"
import { probe } from "./internal/certificateProbe.js"
import { compareEnvironment, inspectCredential } from "./internal/credentialCheck.js"
import { capture, type CapturedLog } from "./internal/logCapture.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface DoctorOptions {
  /** check the configuration only; do not contact the secrets backend or the database */
  readonly offline: boolean
  /**
   * `--compare-environment <other>`: also read `other`'s password secret (same backend and access,
   * the environment's name substituted in `SECRETS_PREFIX` / `VAULT_PATH`) and report whether the
   * two passwords are equal, printing neither. An operator's check, never run at startup.
   */
  readonly compareEnvironment?: Environment
}

/**
 * The password secret's age and rotation, as the backend tells them (what
 * `CredentialRotationOverdue` judges): skipped (offline, or the configuration does not load),
 * not told (the env backend; dynamic credentials), not readable (no permission to read metadata,
 * or the backend unavailable), or read.
 *
 * @since 0.1.0
 * @category models
 */
export type CredentialResult =
  | { readonly _tag: "Skipped"; readonly reason: string }
  | { readonly _tag: "CannotTell"; readonly backend: string }
  | { readonly _tag: "Unreadable"; readonly error: SecretError }
  | {
    readonly _tag: "Read"
    readonly metadata: SecretMetadata.SecretMetadata
    /** when the current credential was set and its age in whole days; none when the backend does not say */
    readonly age: Option.Option<{ readonly setAt: Date; readonly days: number }>
    /** `DB_CREDENTIAL_MAX_AGE` */
    readonly maxAgeDays: number
    readonly overdue: boolean
  }

/**
 * `--compare-environment`: the two secrets compared (SHA-256 digests, `timingSafeEqual`; neither
 * password printed); the backend cannot tell (env); the other secret could not be located or read
 * (a problem: the command exits 1); or not attempted (offline, or the configuration does not load).
 *
 * @since 0.1.0
 * @category models
 */
export type ComparisonResult =
  | {
    readonly _tag: "Compared"
    readonly environment: Environment
    readonly other: Environment
    /** this environment's secret id or path, and the other's */
    readonly secret: string
    readonly otherSecret: string
    readonly equal: boolean
    /** each secret's current version where the backend gives it */
    readonly versionId: Option.Option<string>
    readonly otherVersionId: Option.Option<string>
  }
  | { readonly _tag: "CannotTell" | "Failed" | "Skipped"; readonly other: Environment; readonly reason: string }

/**
 * The configuration as loaded: valid, invalid (`ConfigError`, every variable listed) or decoded
 * but refused by the security policy (the refusals are in `DoctorReport.findings`).
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigurationResult =
  | { readonly _tag: "Loaded"; readonly settings: DbSettings }
  | { readonly _tag: "Invalid"; readonly error: ConfigError }
  | { readonly _tag: "Refused"; readonly settings: DbSettings }

/**
 * The server certificate as the pool's TLS options see it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CertificateReport {
  readonly subject: string
  readonly issuer: string
  readonly validTo: Date
  /** whole days until `validTo` (negative once expired) */
  readonly daysLeft: number
  /** RSA modulus size; absent for EC keys */
  readonly rsaBits: number | undefined
}

/**
 * A startup warning about the connection: a posture rule the environment lets pass (refused in
 * production) or an alert such as `CertificateExpiring`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PostureWarning {
  /** the posture rule (`SuperuserRole`, ...) or the alert (`CertificateExpiring`) */
  readonly rule: string
  readonly message: string
}

/**
 * What the verified connection negotiated, from PostgreSQL's own view of the session
 * (`pg_stat_ssl`, `pg_roles`) and from the server certificate.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionPosture {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly serverVersion: string
  /** none when the session is not encrypted (development with `DB_SSL=false`) */
  readonly tls: Option.Option<{ readonly version: string; readonly cipher: string; readonly bits: number | null }>
  readonly superuser: boolean
  /**
   * what the role can do that an application rarely needs (none listed for a superuser, who can
   * do everything): production refuses those with `refused`, and warns about the rest
   */
  readonly privileges: ReadonlyArray<RolePrivileges.PrivilegeFinding>
  /** the certificate, or why it could not be read (TLS off, probe failed) */
  readonly certificate: Either.Either<CertificateReport, string>
  readonly warnings: ReadonlyArray<PostureWarning>
}

/**
 * The connection step: skipped (offline, or the configuration already failed), verified, or
 * failed with the typed startup error (or the posture query's error).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionResult =
  | { readonly _tag: "Skipped"; readonly reason: string }
  | { readonly _tag: "Verified"; readonly posture: ConnectionPosture }
  | { readonly _tag: "Failed"; readonly error: TakumiDb.StartupError | SqlError }

/**
 * One host of a `DB_HOST` list, checked on its own: the whole stack to that host alone (its TLS,
 * its certificate checked against its own name, the role's posture there) and what it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface HostCheck {
  readonly host: string
  readonly port: number
  /** `Verified` with the host's posture, or `Failed` (unreachable, refused, certificate not for it) */
  readonly connection: Exclude<ConnectionResult, { readonly _tag: "Skipped" }>
  /** what the host is (`pg_is_in_recovery()`, `default_transaction_read_only`); none when not verified */
  readonly state: Option.Option<HostState.SessionState>
}

/**
 * Every host of a `DB_HOST` list (reported only when it lists more than one), and where a new
 * connection would go under `DB_TARGET_SESSION_ATTRS` and `DB_LOAD_BALANCE_HOSTS`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HostsReport {
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalanceHosts: LoadBalanceHosts
  /** in the listed order */
  readonly hosts: ReadonlyArray<HostCheck>
  /**
   * the host a new connection would use (`disable`: one), or the hosts it picks among at random
   * (`random`); empty when no verified host fits
   */
  readonly wouldUse: ReadonlyArray<ServerAddress>
}

/**
 * How much of the security policy could run: on the whole configuration; on what decoded, with
 * the variables in `leftOut` read as unset (they do not decode, or stop decoding once another is
 * unset), so their own checks did not run; or not at all (`because` names the variables that
 * stop it, e.g. `NODE_ENV`, without which no rule knows its environment).
 *
 * @since 0.1.0
 * @category models
 */
export type PolicyCoverage =
  | { readonly _tag: "Complete" }
  | { readonly _tag: "Partial"; readonly leftOut: ReadonlyArray<string> }
  | { readonly _tag: "NotRun"; readonly because: ReadonlyArray<string> }

/**
 * Everything `doctor` found.
 *
 * @since 0.1.0
 * @category models
 */
export interface DoctorReport {
  readonly environment: Option.Option<Environment>
  readonly configuration: ConfigurationResult
  /** the security policy's findings: refusals first, then the relaxations the environment allows */
  readonly findings: ReadonlyArray<SecurityPolicy.Finding>
  /** whether `findings` covers the whole configuration (see {@link PolicyCoverage}) */
  readonly policy: PolicyCoverage
  /** other warnings written while loading the configuration (e.g. a `.env` that is not loaded) */
  readonly notes: ReadonlyArray<string>
  readonly connection: ConnectionResult
  /** the password secret's age and rotation */
  readonly credential: CredentialResult
  /** `--compare-environment`, when asked */
  readonly comparison: Option.Option<ComparisonResult>
  /** each listed host, when `DB_HOST` lists several and the connection was checked */
  readonly hosts: Option.Option<HostsReport>
  /** whether the program would refuse to start (or could not) */
  readonly refused: boolean
}

/**
 * `doctor` found something that stops the program from starting, or that an operator's check
 * (`--compare-environment`: a shared credential, a comparison that could not be made) must have
 * fixed; the command exits non-zero.
 *
 * @since 0.1.0
 * @category errors
 */
export class DoctorRefused extends Schema.TaggedError<DoctorRefused>()("DoctorRefused", {
  /** one line per problem: the rule or error tag and what to change */
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const what = this.problems.every(isOperatorProblem) ? "found by --compare-environment" : "stop the program from starting"
    return `takumi-db doctor: ${this.problems.length} problem(s) ${what}:\n` +
      this.problems.map((p) => `  - ${p}`).join("\n")
  }
}

const isPostureRule = Schema.is(PostureRule)

const warnings = (logs: ReadonlyArray<CapturedLog>): Array<string> =>
  logs.filter((log) => log.level === "WARN").map((log) => log.message)

/** Refusals first, then the relaxations the environment allows. */
const bySeverity = (findings: ReadonlyArray<SecurityPolicy.Finding>): Array<SecurityPolicy.Finding> => [
  ...findings.filter((finding) => finding.severity === "refuse"),
  ...findings.filter((finding) => finding.severity === "warn")
]

const postureWarnings = (logs: ReadonlyArray<CapturedLog>): Array<PostureWarning> =>
  logs.flatMap((log) => {
    if (log.level !== "WARN") return []
    const rule = log.annotations["rule"]
    if (isPostureRule(rule)) return [{ rule, message: log.message }]
    const alert = log.annotations["alert"]
    return alert === undefined ? [] : [{ rule: alert, message: log.message }]
  })

interface SessionRow {
  readonly ssl: boolean | null
  readonly version: string | null
  readonly cipher: string | null
  readonly bits: number | null
  readonly rolsuper: boolean | null
  readonly role: string
  readonly database: string
  readonly server_version: string
}

const sessionQuery = `SELECT s.ssl, s.version, s.cipher, s.bits, r.rolsuper, current_user AS role,
  current_database() AS database, current_setting('server_version') AS server_version
FROM pg_stat_ssl s CROSS JOIN pg_roles r
WHERE s.pid = pg_backend_pid() AND r.rolname = current_user`

const dayMillis = 86_400_000

/** Reads the posture of a session of the running stack and the server certificate. */
const inspectConnection = Effect.gen(function*() {
  const settings = yield* DbConfig
  const sql = yield* SqlClient.SqlClient
  const client = yield* PgClient.PgClient
  const rows = yield* sql.unsafe<SessionRow>(sessionQuery)
  const row = rows[0]
  const privileges = row?.rolsuper === true ? [] : RolePrivileges.findings(yield* RolePrivileges.read)
  const ssl = client.config.ssl
  const certificate: Either.Either<CertificateReport, string> = settings.hosts.length > 1
    ? Either.left("several hosts: each one's certificate is under Hosts")
    : settings.host.startsWith("/")
    ? Either.left("a Unix socket connection carries no TLS")
    : typeof ssl === "object"
    ? yield* probe({ host: settings.host, port: settings.port, tls: ssl, timeout: settings.connectTimeout }).pipe(
      Effect.flatMap((cert) =>
        Effect.map(Clock.currentTimeMillis, (now) => ({
          subject: cert.subject,
          issuer: cert.issuer,
          validTo: cert.validTo,
          daysLeft: Math.floor((cert.validTo.getTime() - now) / dayMillis),
          rsaBits: cert.rsaBits
        }))
      ),
      Effect.mapError((error) => error.message),
      Effect.either
    )
    : Either.left("TLS is off (DB_SSL=false)")
  return {
    host: settings.host,
    port: settings.port,
    database: row?.database ?? settings.database,
    user: row?.role ?? settings.user,
    serverVersion: row?.server_version ?? "unknown",
    tls: row?.ssl === true
      ? Option.some({ version: row.version ?? "unknown", cipher: row.cipher ?? "unknown", bits: row.bits })
      : Option.none(),
    superuser: row?.rolsuper === true,
    privileges,
    certificate,
    warnings: []
  } satisfies ConnectionPosture
})

type Checked = Exclude<ConnectionResult, { readonly _tag: "Skipped" }>

/**
 * The host the verified connection went to, as the startup log (Info, captured by `connectWith`)
 * names it: with several hosts, the one the pool chose, not always the first listed.
 */
const verifiedAt = (logs: ReadonlyArray<CapturedLog>, posture: ConnectionPosture): ConnectionPosture => {
  const verified = logs.find((log) => log.message === "PostgreSQL connection verified")
  const host = verified?.annotations["host"]
  const port = Number(verified?.annotations["port"])
  return host === undefined || !Number.isInteger(port) ? posture : { ...posture, host, port }
}

/**
 * The posture of a session of the stack `layer` builds, with the startup warnings it logged, and
 * `extra` read on the same stack.
 */
const connectWith = <A>(
  layer: Layer.Layer<TakumiDb.Services, TakumiDb.StartupError>,
  extra: Effect.Effect<A, SqlError, SqlClient.SqlClient>
): Effect.Effect<{ readonly connection: Checked; readonly extra: Option.Option<A> }> =>
  Effect.map(capture(Logger.withMinimumLogLevel(Effect.provide(Effect.all([inspectConnection, extra]), layer), LogLevel.Info)), (connected) =>
    Either.match(connected.result, {
      onLeft: (error) => ({ connection: { _tag: "Failed", error } as const, extra: Option.none() }),
      onRight: ([posture, a]) => ({
        connection: {
          _tag: "Verified",
          posture: { ...verifiedAt(connected.logs, posture), warnings: postureWarnings(connected.logs) }
        } as const,
        extra: Option.some(a)
      })
    }))

/** What the session's server is, with the query the pool falls back on (HostState.stateQuery). */
const readState = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql.unsafe<HostState.StateRow>(HostState.stateQuery), (rows) => HostState.stateFromRow(rows[0])))

/**
 * The settings of a program given only `server`: `DB_TARGET_SESSION_ATTRS=any`, so that a standby
 * is checked too, and no read replica (its own line in the configuration).
 */
const onlyHost = (settings: DbSettings, server: ServerAddress): DbSettings => ({
  ...settings,
  host: server.host,
  port: server.port,
  hosts: [server],
  targetSessionAttrs: "any",
  readReplica: Option.none()
})

/** Checks every listed host at once (a host that does not answer costs one connect timeout). */
const checkHosts = (settings: DbSettings): Effect.Effect<HostsReport> =>
  Effect.map(
    Effect.forEach(settings.hosts, (server) =>
      Effect.map(connectWith(TakumiDb.layerFrom(onlyHost(settings, server)), readState), ({ connection, extra }) => ({
        host: server.host,
        port: server.port,
        connection,
        state: extra
      })), { concurrency: "unbounded" }),
    (hosts): HostsReport => ({
      targetSessionAttrs: settings.targetSessionAttrs,
      loadBalanceHosts: settings.loadBalanceHosts,
      hosts,
      wouldUse: HostState.wouldUse(
        settings.targetSessionAttrs,
        settings.loadBalanceHosts,
        hosts.map((h) => ({ route: { host: h.host, port: h.port }, state: Option.getOrUndefined(h.state) }))
      )
    })
  )

const loadConfiguration = DbConfig.load().pipe(Effect.provide(NodeFileSystem.layer))

/** The active provider with `names` unset: what decodes without them. */
const withoutVariables = (provider: ConfigProvider.ConfigProvider, names: ReadonlySet<string>) =>
  ConfigProvider.fromFlat(ConfigProvider.makeFlat({
    load: (path, primitive, split) =>
      names.has(path.join("_"))
        ? Effect.fail(EffectConfigError.MissingData([...path], `${path.join("_")} is left out: it does not decode`))
        : provider.flattened.load(path, primitive, split),
    enumerateChildren: (path) => provider.flattened.enumerateChildren(path),
    patch: provider.flattened.patch
  }))

/** Enough rounds for a default that invalidates another variable (DB_POOL_MIN above a defaulted DB_POOL_MAX). */
const maxRounds = 4

/**
 * The configuration decoded with the invalid variables unset, so that the policy still judges
 * everything else. `@takumi/config` has no partial settings; unsetting a variable gives the same
 * answer as the program would for everything that does not depend on it.
 */
const loadWithout = Effect.fn("Doctor.loadWithout")(function*(error: ConfigError) {
  const provider = yield* Effect.configProviderWith(Effect.succeed)
  const leftOut = new Set(error.issues.map((issue) => issue.variable))
  for (let round = 0; round < maxRounds && !leftOut.has("NODE_ENV"); round++) {
    const attempt = yield* capture(Effect.withConfigProvider(loadConfiguration, withoutVariables(provider, leftOut)))
    if (Either.isRight(attempt.result)) {
      const names = [...leftOut]
      return { loaded: Option.some(attempt.result.right), leftOut: names, coverage: { _tag: "Partial", leftOut: names } as const }
    }
    const fresh = attempt.result.left.issues.filter((issue) => !leftOut.has(issue.variable))
    if (fresh.length === 0) break
    for (const issue of fresh) leftOut.add(issue.variable)
  }
  // without NODE_ENV no rule knows its environment; otherwise what still fails after leaving out
  const because = leftOut.has("NODE_ENV") ? ["NODE_ENV"] : [...new Set(error.issues.map((issue) => issue.variable))]
  return { loaded: Option.none(), leftOut: [...leftOut], coverage: { _tag: "NotRun", because } as const }
})

/** NODE_ENV straight from the provider, for the header when the configuration does not decode. */
const rawEnvironment: Effect.Effect<Option.Option<Environment>> = Config.option(
  Config.literal("development", "test", "staging", "production")("NODE_ENV")
).pipe(Effect.orElseSucceed(() => Option.none()))

const problemsOf = (report: Omit<DoctorReport, "refused">): Array<string> => {
  const problems: Array<string> = []
  if (report.configuration._tag === "Invalid") {
    problems.push(...report.configuration.error.issues.map((issue) => `ConfigError: ${issue.message}`))
  }
  for (const finding of report.findings) {
    if (finding.severity === "refuse") problems.push(`${finding.rule} (${finding.variable}): ${finding.message}`)
  }
  if (report.connection._tag === "Failed") {
    problems.push(`${report.connection.error._tag}: ${errorText(report.connection.error)}`)
  }
  return problems
}

const isOperatorProblem = (problem: string): boolean =>
  problem.startsWith("SharedCredential: ") || problem.startsWith("CompareEnvironmentFailed: ")

/** What `--compare-environment` found that an operator must act on: not a startup refusal, but exit 1. */
const comparisonProblems = (comparison: Option.Option<ComparisonResult>): Array<string> => {
  if (Option.isNone(comparison)) return []
  const c = comparison.value
  if (c._tag === "Compared" && c.equal) {
    return [
      `SharedCredential: ${c.environment} and ${c.other} use the same database password (${c.secret}, ${c.otherSecret}). ` +
      `NEVER share database credentials across environments: give ${c.other} its own password (ALTER ROLE ... PASSWORD there, then update its secret).`
    ]
  }
  return c._tag === "Failed" ? [`CompareEnvironmentFailed: ${c.reason}`] : []
}

const errorText = (error: TakumiDb.StartupError | SqlError): string => {
  if (error._tag !== "SqlError") return error.message
  const cause: unknown = error.cause
  const reason = typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string"
    ? cause.message
    : ""
  return reason === "" ? error.message : `${error.message}: ${reason}`
}

/**
 * Runs the checks and returns the report; never fails (every failure is part of the report).
 * Reads the active `ConfigProvider` — the process environment in the command, a
 * `ConfigProvider.fromMap` in tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (options: DoctorOptions): Effect.Effect<DoctorReport> =>
  Effect.gen(function*() {
    // decoded without enforcing the policy, so that every refusal is listed, not only the first
    const loaded = yield* capture(loadConfiguration)
    const notes = warnings(loaded.logs)
    let findings: ReadonlyArray<SecurityPolicy.Finding>
    let policy: PolicyCoverage = { _tag: "Complete" }
    let configuration: ConfigurationResult
    let environment: Option.Option<Environment>
    if (Either.isRight(loaded.result)) {
      const { facts, settings } = loaded.result.right
      findings = bySeverity(SecurityPolicy.evaluate(settings, facts))
      configuration = findings.some((finding) => finding.severity === "refuse")
        ? { _tag: "Refused", settings }
        : { _tag: "Loaded", settings }
      environment = Option.some(settings.environment)
    } else {
      const error = loaded.result.left
      configuration = { _tag: "Invalid", error }
      const partial = yield* loadWithout(error)
      policy = partial.coverage
      findings = Option.match(partial.loaded, {
        onNone: () => [],
        onSome: ({ facts, settings }) => {
          const leftOut = new Set(partial.leftOut)
          // a finding about a left-out variable judges its default, not what was set: drop it
          return bySeverity(SecurityPolicy.evaluate(settings, facts).filter((f) => !leftOut.has(f.variable)))
        }
      })
      environment = Option.isSome(partial.loaded)
        ? Option.some(partial.loaded.value.settings.environment)
        : yield* rawEnvironment
    }

    let connection: ConnectionResult
    let hosts: Option.Option<HostsReport> = Option.none()
    if (configuration._tag !== "Loaded") {
      connection = { _tag: "Skipped", reason: "the configuration does not load" }
    } else if (options.offline) {
      connection = { _tag: "Skipped", reason: "--offline" }
    } else {
      connection = (yield* connectWith(TakumiDb.layer, Effect.void)).connection
      // a host that fails here does not refuse the program on its own: the connection above says
      // whether a host fits (NoSuitableHost when none does)
      if (configuration.settings.hosts.length > 1) hosts = Option.some(yield* checkHosts(configuration.settings))
    }
    const online = configuration._tag === "Loaded" && !options.offline ? Option.some(configuration.settings) : Option.none()
    const credential: CredentialResult = Option.isSome(online)
      ? yield* inspectCredential(online.value)
      : { _tag: "Skipped", reason: connection._tag === "Skipped" ? connection.reason : "the connection was not checked" }
    const other = options.compareEnvironment
    const comparison = other === undefined
      ? Option.none()
      : Option.some(
        Option.isSome(online)
          ? yield* compareEnvironment(online.value, other)
          : { _tag: "Skipped", other, reason: credential._tag === "Skipped" ? credential.reason : "not online" } as const
      )
    const report = { environment, configuration, findings, policy, notes, connection, hosts, credential, comparison }
    return { ...report, refused: problemsOf(report).length > 0 }
  }).pipe(Effect.withSpan("Doctor.run"))

/**
 * The report as a failure when the program would not start: for the command's exit code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireHealthy = (report: DoctorReport): Effect.Effect<DoctorReport, DoctorRefused> => {
  const problems = [...problemsOf(report), ...comparisonProblems(report.comparison)]
  return problems.length === 0 ? Effect.succeed(report) : Effect.fail(new DoctorRefused({ problems }))
}

const pem = (source: Option.Option<PemSource>, none: string): string =>
  Option.match(source, {
    onNone: () => none,
    onSome: (s) => (s._tag === "File" ? s.path : "inline PEM")
  })

const millis = (duration: Duration.Duration): string => `${Duration.toMillis(duration)} ms`

const summarise = (settings: DbSettings): Array<string> => {
  const { pool, secrets, tls } = settings
  const lines = [
    `  target     ${settings.host}:${settings.port}, database ${settings.database}, user ${settings.user}, ` +
    `application_name ${settings.applicationName}`,
    tls.enabled
      ? `  tls        on, certificate ${tls.rejectUnauthorized ? "verified" : "NOT verified"}, minimum ${tls.minVersion}, ` +
        `CA ${pem(tls.ca, "system store")}, client certificate ${pem(tls.cert, "none")}`
      : "  tls        OFF",
    `  pool       min ${pool.min}, max ${pool.max}, connect timeout ${millis(settings.connectTimeout)}, ` +
    `idle timeout ${millis(settings.idleTimeout)}`
  ]
  const backend = [`  secrets    ${secrets.backend}, prefix ${secrets.prefix}, cache ${millis(secrets.cacheTtl)}`]
  if (Option.isSome(secrets.vault)) {
    const vault = secrets.vault.value
    backend.push(
      `             vault ${vault.address}, path ${vault.path}` +
        Option.match(vault.namespace, { onNone: () => "", onSome: (ns) => `, namespace ${ns}` })
    )
  }
  if (Option.isSome(secrets.aws)) {
    const aws = secrets.aws.value
    backend.push(
      `             region ${aws.region}` +
        Option.match(aws.endpoint, { onNone: () => "", onSome: (url) => `, endpoint ${url}` })
    )
  }
  const replica = Option.match(settings.readReplica, {
    onNone: () => [],
    onSome: (r) => [`  replica    ${r.host}:${r.port}, failover timeout ${millis(settings.failoverTimeout)}`]
  })
  const pooler = settings.pooler === "pgbouncer"
    ? [
      "  pooler     pgbouncer (transaction pooling): statement bounds checked on the server; the verified tls line " +
      "below is pg_stat_ssl, i.e. PgBouncer's leg to PostgreSQL"
    ]
    : []
  return [...lines, ...pooler, ...backend, ...replica]
}

const renderConnection = (connection: ConnectionResult): Array<string> => {
  switch (connection._tag) {
    case "Skipped":
      return [`  skipped (${connection.reason})`]
    case "Failed":
      return [`  FAILED ${connection.error._tag}: ${errorText(connection.error)}`]
    case "Verified": {
      const p = connection.posture
      const certificate = Either.match(p.certificate, {
        onLeft: (reason) => `  certificate  not inspected: ${reason}`,
        onRight: (c) =>
          `  certificate  ${c.subject}, issued by ${c.issuer}, ` +
          (c.daysLeft < 0 ? `EXPIRED on ${c.validTo.toISOString()}` : `valid until ${c.validTo.toISOString()} (${c.daysLeft} days)`) +
          (c.rsaBits === undefined ? "" : `, RSA ${c.rsaBits} bits`)
      })
      return [
        `  verified     ${p.host}:${p.port}, database ${p.database} as ${p.user} (PostgreSQL ${p.serverVersion})`,
        Option.match(p.tls, {
          onNone: () => "  tls          NOT encrypted",
          onSome: (t) => `  tls          ${t.version}, cipher ${t.cipher}` + (t.bits === null ? "" : ` (${t.bits} bits)`)
        }),
        certificate,
        `  role         ${p.user} is ${p.superuser ? "a SUPERUSER" : "not a superuser"}`,
        ...(p.superuser ? [] : p.privileges.length === 0
          ? ["  privileges   none beyond its grants (least privilege)"]
          : p.privileges.map((f) =>
            `  privilege    ${f.rule}: ${f.detail} (${f.refused ? "REFUSED in production" : "warned about in production"})`
          )),
        ...p.warnings.map((w) => `  warn         ${w.rule}: ${w.message}`)
      ]
    }
  }
}

const version = (id: Option.Option<string>): string => Option.match(id, { onNone: () => "", onSome: (v) => `, version ${v}` })

const renderCredential = (credential: CredentialResult): Array<string> => {
  switch (credential._tag) {
    case "Skipped":
      return [`  skipped (${credential.reason})`]
    case "CannotTell":
      return [`  age          not told by the ${credential.backend} backend (exempt from CredentialRotationOverdue)`]
    case "Unreadable":
      return [`  age          not readable (${credential.error._tag}): ${credential.error.message}`]
    case "Read": {
      const m = credential.metadata
      return [
        `  secret       ${m.secret} (${m.backend}${version(m.versionId)})`,
        Option.match(credential.age, {
          onNone: () => "  age          unknown: the backend does not say when the credential was set",
          onSome: ({ days, setAt }) =>
            `  age          set ${setAt.toISOString()}, ${days} days ago (DB_CREDENTIAL_MAX_AGE ${credential.maxAgeDays} days)` +
            (credential.overdue ? ": OVERDUE, rotate it (CredentialRotationOverdue)" : "")
        }),
        Option.match(m.rotationEnabled, {
          onNone: () => "  rotation     not told (Vault KV has no rotation schedule: rotate by writing a new version)",
          onSome: (enabled) => `  rotation     automatic rotation ${enabled ? "on" : "OFF"}`
        })
      ]
    }
  }
}

const renderComparison = (c: ComparisonResult): Array<string> => {
  switch (c._tag) {
    case "Compared": {
      const both = `${c.environment} (${c.secret}${version(c.versionId)}) and ${c.other} (${c.otherSecret}${version(c.otherVersionId)})`
      return c.equal
        ? [`  SHARED       ${both} hold the SAME password (SHA-256 digests compared; neither printed): never share database credentials across environments`]
        : [`  different    ${both} hold different passwords (SHA-256 digests compared; neither printed)`]
    }
    case "CannotTell":
      return [`  cannot tell  ${c.reason}`]
    case "Failed":
      return [`  FAILED       ${c.reason}`]
    case "Skipped":
      return [`  skipped (${c.reason})`]
  }
}
/** What a host is, for the report: `read-only` is a primary with `default_transaction_read_only=on`. */
const kindOf = (state: HostState.SessionState): "primary" | "read-only" | "standby" =>
  state.hotStandby ? "standby" : HostState.isWritable(state) ? "primary" : "read-only"

const kindText = {
  primary: "primary (accepts writes)",
  "read-only": "read-only primary (default_transaction_read_only=on)",
  standby: "hot standby (read-only)"
} as const

const where = (server: ServerAddress): string => `${server.host}:${server.port}`

const renderWouldUse = (hosts: HostsReport): string => {
  const attrs = `DB_TARGET_SESSION_ATTRS=${hosts.targetSessionAttrs}`
  if (hosts.wouldUse.length === 0) {
    return `  would use    none: no listed host is ${HostState.describeAttrs(hosts.targetSessionAttrs)} (${attrs})`
  }
  return hosts.loadBalanceHosts === "random"
    ? `  would use    one of ${hosts.wouldUse.map(where).join(", ")}, at random for each connection`
    : `  would use    ${where(hosts.wouldUse[0] as ServerAddress)}`
}

const renderHosts = (hosts: HostsReport): Array<string> => [
  "",
  `Hosts (DB_TARGET_SESSION_ATTRS=${hosts.targetSessionAttrs}, DB_LOAD_BALANCE_HOSTS=${hosts.loadBalanceHosts})`,
  ...hosts.hosts.flatMap((h) => [
    `  ${where(h)}  ${Option.match(h.state, { onNone: () => "FAILED", onSome: (state) => kindText[kindOf(state)] })}`,
    ...renderConnection(h.connection).map((line) => `  ${line}`)
  ]),
  renderWouldUse(hosts)
]

const renderCoverage = (policy: PolicyCoverage): Array<string> => {
  switch (policy._tag) {
    case "Complete":
      return []
    case "Partial":
      return [
        `  not run    the checks of ${policy.leftOut.join(", ")}: ${
          policy.leftOut.length === 1 ? "it does" : "they do"
        } not decode; every other variable was checked`
      ]
    case "NotRun":
      return [`  not run    no check could run: ${policy.because.join(", ")} must decode first`]
  }
}

/**
 * The report as lines for a terminal.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (report: DoctorReport): ReadonlyArray<string> => {
  const configuration = report.configuration
  const lines = [
    `takumi-db doctor (NODE_ENV=${Option.getOrElse(report.environment, () => "unknown")})`,
    "",
    "Configuration"
  ]
  switch (configuration._tag) {
    case "Loaded":
      lines.push(...summarise(configuration.settings))
      break
    case "Invalid":
      lines.push(...configuration.error.issues.map((issue) => `  INVALID ${issue.variable}: ${issue.message}`))
      break
    case "Refused":
      lines.push(...summarise(configuration.settings), "  refused by the security policy (see below)")
      break
  }
  lines.push(...report.notes.map((note) => `  note       ${note}`), "", "Security policy")
  lines.push(...renderCoverage(report.policy))
  if (report.findings.length === 0 && report.policy._tag !== "NotRun") lines.push("  no findings")
  for (const finding of report.findings) {
    lines.push(`  ${finding.severity === "refuse" ? "REFUSE" : "warn  "} ${finding.rule} (${finding.variable}): ${finding.message}`)
  }
  lines.push("", "Connection", ...renderConnection(report.connection))
  lines.push(...Option.match(report.hosts, { onNone: () => [], onSome: renderHosts }), "")
  lines.push("Credential", ...renderCredential(report.credential), "")
  if (Option.isSome(report.comparison)) {
    lines.push(`Credentials across environments (--compare-environment ${report.comparison.value.other})`)
    lines.push(...renderComparison(report.comparison.value), "")
  }
  lines.push(
    report.refused
      ? "Result: REFUSED — the program would not start with this configuration."
      : comparisonProblems(report.comparison).length > 0
      ? "Result: PROBLEM — the program would start, but see Credentials across environments."
      : report.connection._tag === "Skipped"
      ? "Result: OK — the configuration passes the security policy (the connection was not checked)."
      : "Result: OK — the program would start with this configuration."
  )
  return lines
}

/**
 * A setting that names a PEM: its file path, `"inline"` for PEM given in the variable itself (never
 * its content), or `null` when unset.
 *
 * @since 0.1.0
 * @category models
 */
export type PemJson = string | null

/**
 * {@link DoctorReport} as `doctor --json` prints it: plain JSON with stable field names (new fields
 * may be added; none is renamed or removed), settings summarised field by field as in the text
 * report, so never a password, token, private key or `DATABASE_URL`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DoctorJson {
  /** `NODE_ENV`, `null` when it does not decode */
  readonly environment: Environment | null
  readonly result: "ok" | "refused"
  /** one line per problem that stops the program, as on standard error */
  readonly problems: ReadonlyArray<string>
  readonly configuration: {
    readonly status: "loaded" | "invalid" | "refused"
    readonly issues: ReadonlyArray<{ readonly variable: string; readonly expected: string; readonly message: string }>
    readonly settings: SettingsJson | null
  }
  readonly policy: {
    readonly coverage: "complete" | "partial" | "not-run"
    /** the variables whose checks did not run (`partial`) or that stop every check (`not-run`) */
    readonly notChecked: ReadonlyArray<string>
    readonly findings: ReadonlyArray<SecurityPolicy.Finding>
  }
  readonly notes: ReadonlyArray<string>
  readonly connection:
    | { readonly status: "skipped"; readonly reason: string }
    | { readonly status: "failed"; readonly error: { readonly tag: string; readonly message: string } }
    | { readonly status: "verified"; readonly posture: PostureJson }
  /** see {@link CredentialResult} */
  readonly credential:
    | { readonly status: "skipped"; readonly reason: string }
    | { readonly status: "not-told"; readonly backend: string }
    | { readonly status: "unreadable"; readonly error: { readonly tag: string; readonly message: string } }
    | {
      readonly status: "read"
      readonly backend: string
      readonly secret: string
      readonly versionId: string | null
      /** ISO 8601; `null` when the backend does not say */
      readonly setAt: string | null
      readonly ageDays: number | null
      readonly maxAgeDays: number
      readonly overdue: boolean
      /** `null` when the backend cannot tell (Vault KV) */
      readonly rotationEnabled: boolean | null
    }
  /** `--compare-environment`, `null` when not asked (see {@link ComparisonResult}); never a password or digest */
  readonly comparison:
    | null
    | {
      readonly status: "equal" | "different"
      readonly environment: Environment
      readonly other: Environment
      readonly secret: string
      readonly otherSecret: string
      readonly versionId: string | null
      readonly otherVersionId: string | null
    }
    | { readonly status: "cannot-tell" | "failed" | "skipped"; readonly other: Environment; readonly reason: string }
  /** each listed host, when `DB_HOST` lists several and the connection was checked */
  readonly hosts: HostsJson | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HostsJson {
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalanceHosts: LoadBalanceHosts
  readonly hosts: ReadonlyArray<{
    readonly host: string
    readonly port: number
    /** `read-only`: not a standby, but `default_transaction_read_only=on`; `null`: not verified */
    readonly kind: "primary" | "read-only" | "standby" | null
    readonly connection: Exclude<DoctorJson["connection"], { readonly status: "skipped" }>
  }>
  /** see {@link HostsReport.wouldUse} */
  readonly wouldUse: ReadonlyArray<ServerAddress>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SettingsJson {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly applicationName: string
  readonly tls: {
    readonly enabled: boolean
    readonly verifyCertificate: boolean
    readonly minVersion: string
    /** `null`: the system CA store */
    readonly ca: PemJson
    readonly clientCertificate: PemJson
  }
  readonly pool: {
    readonly min: number
    readonly max: number
    readonly connectTimeoutMs: number
    readonly idleTimeoutMs: number
  }
  readonly secrets: {
    readonly backend: string
    readonly prefix: string
    readonly cacheTtlMs: number
    readonly vault: { readonly address: string; readonly path: string; readonly namespace: string | null } | null
    readonly aws: { readonly region: string; readonly endpoint: string | null } | null
  }
  readonly readReplica: { readonly host: string; readonly port: number; readonly failoverTimeoutMs: number } | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PostureJson {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly serverVersion: string
  readonly tls: { readonly version: string; readonly cipher: string; readonly bits: number | null } | null
  readonly superuser: boolean
  /** see {@link ConnectionPosture.privileges} */
  readonly privileges: ReadonlyArray<{ readonly rule: string; readonly detail: string; readonly refused: boolean }>
  readonly certificate:
    | {
      readonly subject: string
      readonly issuer: string
      readonly validTo: string
      readonly daysLeft: number
      readonly rsaBits: number | null
    }
    | { readonly notInspected: string }
  readonly warnings: ReadonlyArray<PostureWarning>
}

const pemJson = (source: Option.Option<PemSource>): PemJson =>
  Option.match(source, { onNone: () => null, onSome: (s) => (s._tag === "File" ? s.path : "inline") })

const settingsJson = (settings: DbSettings): SettingsJson => ({
  host: settings.host,
  port: settings.port,
  database: settings.database,
  user: settings.user,
  applicationName: settings.applicationName,
  tls: {
    enabled: settings.tls.enabled,
    verifyCertificate: settings.tls.rejectUnauthorized,
    minVersion: settings.tls.minVersion,
    ca: pemJson(settings.tls.ca),
    clientCertificate: pemJson(settings.tls.cert)
  },
  pool: {
    min: settings.pool.min,
    max: settings.pool.max,
    connectTimeoutMs: Duration.toMillis(settings.connectTimeout),
    idleTimeoutMs: Duration.toMillis(settings.idleTimeout)
  },
  secrets: {
    backend: settings.secrets.backend,
    prefix: settings.secrets.prefix,
    cacheTtlMs: Duration.toMillis(settings.secrets.cacheTtl),
    vault: Option.getOrNull(Option.map(settings.secrets.vault, (vault) => ({
      address: vault.address,
      path: vault.path,
      namespace: Option.getOrNull(vault.namespace)
    }))),
    aws: Option.getOrNull(Option.map(settings.secrets.aws, (aws) => ({
      region: aws.region,
      endpoint: Option.getOrNull(aws.endpoint)
    })))
  },
  readReplica: Option.getOrNull(Option.map(settings.readReplica, (replica) => ({
    host: replica.host,
    port: replica.port,
    failoverTimeoutMs: Duration.toMillis(settings.failoverTimeout)
  })))
})

const postureJson = (p: ConnectionPosture): PostureJson => ({
  host: p.host,
  port: p.port,
  database: p.database,
  user: p.user,
  serverVersion: p.serverVersion,
  tls: Option.getOrNull(p.tls),
  superuser: p.superuser,
  privileges: p.privileges,
  certificate: Either.match(p.certificate, {
    onLeft: (reason) => ({ notInspected: reason }),
    onRight: (c) => ({
      subject: c.subject,
      issuer: c.issuer,
      validTo: c.validTo.toISOString(),
      daysLeft: c.daysLeft,
      rsaBits: c.rsaBits ?? null
    })
  }),
  warnings: p.warnings
})

const credentialJson = (credential: CredentialResult): DoctorJson["credential"] => {
  switch (credential._tag) {
    case "Skipped":
      return { status: "skipped", reason: credential.reason }
    case "CannotTell":
      return { status: "not-told", backend: credential.backend }
    case "Unreadable":
      return { status: "unreadable", error: { tag: credential.error._tag, message: credential.error.message } }
    case "Read": {
      const m = credential.metadata
      return {
        status: "read",
        backend: m.backend,
        secret: m.secret,
        versionId: Option.getOrNull(m.versionId),
        setAt: Option.getOrNull(Option.map(credential.age, (age) => age.setAt.toISOString())),
        ageDays: Option.getOrNull(Option.map(credential.age, (age) => age.days)),
        maxAgeDays: credential.maxAgeDays,
        overdue: credential.overdue,
        rotationEnabled: Option.getOrNull(m.rotationEnabled)
      }
    }
  }
}

const comparisonJson = (comparison: Option.Option<ComparisonResult>): DoctorJson["comparison"] => {
  if (Option.isNone(comparison)) return null
  const c = comparison.value
  switch (c._tag) {
    case "Compared":
      return {
        status: c.equal ? "equal" : "different",
        environment: c.environment,
        other: c.other,
        secret: c.secret,
        otherSecret: c.otherSecret,
        versionId: Option.getOrNull(c.versionId),
        otherVersionId: Option.getOrNull(c.otherVersionId)
      }
    case "CannotTell":
      return { status: "cannot-tell", other: c.other, reason: c.reason }
    case "Failed":
      return { status: "failed", other: c.other, reason: c.reason }
    case "Skipped":
      return { status: "skipped", other: c.other, reason: c.reason }
  }
}

function connectionJson(connection: Checked): Exclude<DoctorJson["connection"], { readonly status: "skipped" }>
function connectionJson(connection: ConnectionResult): DoctorJson["connection"]
function connectionJson(connection: ConnectionResult): DoctorJson["connection"] {
  switch (connection._tag) {
    case "Skipped":
      return { status: "skipped", reason: connection.reason }
    case "Failed":
      return { status: "failed", error: { tag: connection.error._tag, message: errorText(connection.error) } }
    case "Verified":
      return { status: "verified", posture: postureJson(connection.posture) }
  }
}

const hostsJson = (hosts: HostsReport): HostsJson => ({
  targetSessionAttrs: hosts.targetSessionAttrs,
  loadBalanceHosts: hosts.loadBalanceHosts,
  hosts: hosts.hosts.map((h) => ({
    host: h.host,
    port: h.port,
    kind: Option.getOrNull(Option.map(h.state, kindOf)),
    connection: connectionJson(h.connection)
  })),
  wouldUse: hosts.wouldUse.map(({ host, port }) => ({ host, port }))
})

/**
 * The report as the JSON document `doctor --json` prints (see {@link DoctorJson}).
 *
 * @since 0.1.0
 * @category rendering
 */
export const toJson = (report: DoctorReport): DoctorJson => {
  const configuration = report.configuration
  const policy = report.policy
  return {
    environment: Option.getOrNull(report.environment),
    result: report.refused ? "refused" : "ok",
    problems: [...problemsOf(report), ...comparisonProblems(report.comparison)],
    configuration: {
      status: configuration._tag === "Loaded" ? "loaded" : configuration._tag === "Invalid" ? "invalid" : "refused",
      issues: configuration._tag === "Invalid"
        ? configuration.error.issues.map(({ expected, message, variable }) => ({ variable, expected, message }))
        : [],
      settings: configuration._tag === "Invalid" ? null : settingsJson(configuration.settings)
    },
    policy: {
      coverage: policy._tag === "Complete" ? "complete" : policy._tag === "Partial" ? "partial" : "not-run",
      notChecked: policy._tag === "Complete" ? [] : policy._tag === "Partial" ? policy.leftOut : policy.because,
      findings: report.findings.map(({ message, rule, severity, variable }) => ({ rule, severity, variable, message }))
    },
    notes: report.notes,
    connection: connectionJson(report.connection),
    hosts: Option.getOrNull(Option.map(report.hosts, hostsJson)),
    credential: credentialJson(report.credential),
    comparison: comparisonJson(report.comparison)
  }
}
