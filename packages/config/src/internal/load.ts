/**
 * Reading the environment: the active `ConfigProvider` (the process environment unless a test
 * sets another), a `.env` file in development and test, decoding and assembling. This is the one
 * place that touches environment-like sources.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as PlatformConfigProvider from "@effect/platform/PlatformConfigProvider"
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { ConfigError, type ConfigIssue } from "../ConfigError.js"
import type { DbSettings } from "../DbSettings.js"
import type { EnvironmentFacts } from "../SecurityPolicy.js"
import * as DotEnvGit from "./dotEnvGit.js"
import { assemble } from "./assemble.js"
import { Environment } from "./fields.js"
import { type VariableName, variableInfo, variableNames, Variables } from "./variables.js"

/** @internal */
export interface LoadOptions {
  /** the dotenv file to consider; `false` ignores dotenv files altogether (default `.env`) */
  readonly dotEnv?: string | false
}

/** @internal */
export interface Loaded {
  readonly settings: DbSettings
  readonly facts: EnvironmentFacts
}

type Raw = Readonly<Record<string, string | Redacted.Redacted<string>>>

const readOne = (name: VariableName) => {
  const config: Config.Config<string | Redacted.Redacted<string>> = variableInfo[name].secret
    ? Config.redacted(name)
    : Config.string(name)
  return Config.option(config).pipe(
    Effect.map((value) => Option.map(value, (present) => [name, present] as const)),
    Effect.mapError((): ConfigIssue => ({
      variable: name,
      expected: variableInfo[name].expected,
      message: `${name}: could not be read from the configuration source`
    })),
    Effect.either
  )
}

/** Every known variable present in the active ConfigProvider. */
const readRaw: Effect.Effect<Raw, ConfigError> = Effect.forEach(variableNames, readOne).pipe(
  Effect.flatMap((results) => {
    const [failures, found] = Arr.partitionMap(results, (result) => result)
    const [first, ...rest] = failures
    if (first !== undefined) return Effect.fail(ConfigError.fromIssues(first, ...rest))
    const raw: Record<string, string | Redacted.Redacted<string>> = {}
    for (const entry of found) if (Option.isSome(entry)) raw[entry.value[0]] = entry.value[1]
    return Effect.succeed(raw)
  })
)

const toVariableName = (key: PropertyKey | undefined): Option.Option<VariableName> =>
  Option.fromNullable(variableNames.find((name) => name === key))

/**
 * The message for a value that did not decode. The value is echoed only for variables that
 * cannot hold a secret, and never when it looks like PEM or is long; a schema's own reason is
 * shown only for schemas that write their reasons without the value.
 */
/**
 * What of a value may be echoed: never a user-info part (`user:password@`, with or without a
 * scheme: `u:Hunter2@db` in DB_HOST is one), a query string or a fragment (`?token=...`), whatever
 * the variable, since any of them can carry a credential pasted into the wrong place.
 */
const echoable = (value: string): { readonly text: string; readonly trimmed: boolean } => {
  const text = value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^\s/?#@]*@/i, "$1").replace(/[?#][\s\S]*$/, "")
  return { text, trimmed: text !== value }
}

const describe = (name: VariableName, raw: Raw, reason: string): ConfigIssue => {
  const info = variableInfo[name]
  const value = raw[name]
  const shown = typeof value === "string" ? echoable(value) : undefined
  const received = !info.secret && shown !== undefined && !shown.text.includes("-----") && shown.text.length <= 200
    ? `, received ${JSON.stringify(shown.text)}${shown.trimmed ? " (user-info, query string and fragment not shown)" : ""}`
    : ""
  const secretText = value === undefined ? "" : typeof value === "string" ? value : Redacted.value(value)
  const safeReason = info.explains && !(info.secret && secretText !== "" && reason.includes(secretText))
  return {
    variable: name,
    expected: info.expected,
    message: `${name}: expected ${info.expected}${received}${safeReason ? ` (${reason})` : ""}`
  }
}

const issuesOf = (error: ParseResult.ParseError, raw: Raw): ReadonlyArray<ConfigIssue> => {
  const seen = new Set<VariableName>()
  const issues: Array<ConfigIssue> = []
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const name = toVariableName(issue.path[0])
    if (Option.isNone(name) || seen.has(name.value)) continue
    seen.add(name.value)
    issues.push(describe(name.value, raw, issue.message))
  }
  return issues
}

/** Never expected: every refusal in `assemble` reports an issue. Kept so the types need no cast. */
const unexplained: ConfigIssue = {
  variable: "NODE_ENV",
  expected: "a complete configuration",
  message: "The database configuration is incomplete; check NODE_ENV, DB_HOST (or DATABASE_URL) and DB_USER"
}

const dotEnvIssue = (path: string): ConfigIssue => ({
  variable: path,
  expected: "a readable dotenv file (KEY=value lines)",
  message: `${path}: exists but cannot be read as a dotenv file; fix its permissions or remove it`
})

/** Variables whose value is a credential, or (`DATABASE_URL`) may carry one. */
const credentialVariables = [
  "DB_PASSWORD",
  "DATABASE_URL",
  "VAULT_TOKEN",
  "VAULT_SECRET_ID",
  "DB_SSL_KEY",
  "DB_SSL_KEY_PASSPHRASE",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN"
] as const

/** A `DATABASE_URL` carries a credential when it has a password in its user-info. */
const carriesCredential = (name: string, value: string): boolean =>
  name !== "DATABASE_URL" || (URL.canParse(value) && new URL(value).password !== "")

/** The credential-bearing variables a dotenv file sets: names only, values are never kept. */
const credentialsIn = (provider: ConfigProvider.ConfigProvider) =>
  Effect.filter(credentialVariables, (name) =>
    Effect.withConfigProvider(Config.option(Config.redacted(name)), provider).pipe(
      Effect.map(Option.exists((value) => carriesCredential(name, Redacted.value(value)))),
      Effect.orElseSucceed(() => false)
    ))

/** The dotenv file as a ConfigProvider, `None` when there is no such file. */
const dotEnvProvider = (path: string) =>
  PlatformConfigProvider.fromDotEnv(path).pipe(
    Effect.map(Option.some),
    Effect.catchAll((error) =>
      error._tag === "SystemError" && error.reason === "NotFound"
        ? Effect.succeed(Option.none<ConfigProvider.ConfigProvider>())
        : Effect.fail(ConfigError.fromIssues(dotEnvIssue(path)))
    )
  )

/**
 * A variable that Node (or a library) reads from the real process environment: whatever
 * ConfigProvider the configuration comes from, the process environment is what they obey, so it
 * is read first (through `ConfigProvider.fromEnv`), then the active provider.
 */
const processEnvironmentFirst = (name: string) =>
  Effect.withConfigProvider(Config.option(Config.string(name)), ConfigProvider.fromEnv()).pipe(
    Effect.flatMap((real) => Option.isSome(real) ? Effect.succeed(real) : Config.option(Config.string(name))),
    Effect.orElseSucceed(() => Option.none<string>())
  )

/**
 * Process-wide switches read by Node and node-vault behind our back. Read from the active
 * provider before any dotenv file is merged: only the real environment reaches those libraries.
 */
const readVerificationOverrides = Effect.gen(function*() {
  const read = processEnvironmentFirst
  const nodeTls = yield* read("NODE_TLS_REJECT_UNAUTHORIZED")
  const vaultSkip = yield* read("VAULT_SKIP_VERIFY")
  const overrides: Array<"NODE_TLS_REJECT_UNAUTHORIZED" | "VAULT_SKIP_VERIFY"> = []
  // Node disables verification only for the exact value "0"; node-vault for any non-empty value.
  if (Option.contains(nodeTls, "0")) overrides.push("NODE_TLS_REJECT_UNAUTHORIZED")
  if (Option.exists(vaultSkip, (value) => value !== "")) overrides.push("VAULT_SKIP_VERIFY")
  return overrides
})

/** `NODE_EXTRA_CA_CERTS`: Node adds its certificates to the public CA store of every TLS client. */
const readExtraCaCerts = processEnvironmentFirst("NODE_EXTRA_CA_CERTS").pipe(
  Effect.map(Option.filter((path) => path !== ""))
)

/** @internal */
export const load = (
  options: LoadOptions = {}
): Effect.Effect<Loaded, ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const dotEnvPath = options.dotEnv === undefined ? ".env" : options.dotEnv
    const base = yield* Effect.configProviderWith(Effect.succeed)
    let raw = yield* readRaw
    const environment = Option.flatMap(
      Option.fromNullable(raw.NODE_ENV),
      Schema.decodeUnknownOption(Environment)
    )
    let dotEnv: EnvironmentFacts["dotEnv"] = undefined
    if (Option.isSome(environment) && dotEnvPath !== false) {
      const provider = yield* dotEnvProvider(dotEnvPath)
      if (Option.isSome(provider)) {
        const credentials = yield* credentialsIn(provider.value)
        const versionControl = yield* DotEnvGit.versionControlOf(dotEnvPath)
        const tracked = Option.match(versionControl, { onNone: () => ({}), onSome: (state) => ({ versionControl: state }) })
        if (environment.value === "development" || environment.value === "test") {
          // Variables set in the environment win over the file.
          raw = yield* Effect.withConfigProvider(readRaw, ConfigProvider.orElse(base, () => provider.value))
          dotEnv = { path: dotEnvPath, loaded: true, credentials, ...tracked }
          yield* Effect.logDebug(`Loaded ${dotEnvPath} (variables set in the environment take precedence)`)
        } else {
          dotEnv = { path: dotEnvPath, loaded: false, credentials, ...tracked }
          yield* Effect.logWarning(
            `${dotEnvPath} found but not loaded: .env files are read in development and test only, ` +
              `NODE_ENV=${environment.value}. Remove it from the deployment.`
          )
        }
      }
    }
    const decoded = yield* Schema.decodeUnknown(Variables, { errors: "all", onExcessProperty: "ignore" })(raw).pipe(
      Effect.either
    )
    const missingEnvironment: ReadonlyArray<ConfigIssue> = raw.NODE_ENV === undefined
      ? [{
        variable: "NODE_ENV",
        expected: variableInfo.NODE_ENV.expected,
        message: `NODE_ENV: required (${variableInfo.NODE_ENV.expected}); set it in the process environment`
      }]
      : []
    const assembled = Either.flatMap(
      Either.mapLeft(decoded, (error) => [...missingEnvironment, ...issuesOf(error, raw)]),
      assemble
    )
    if (Either.isLeft(assembled)) {
      const [first, ...rest] = assembled.left
      return yield* Effect.fail(ConfigError.fromIssues(first ?? unexplained, ...rest))
    }
    const verificationOverrides = yield* readVerificationOverrides
    const extraCaCerts = yield* readExtraCaCerts
    const facts: EnvironmentFacts = {
      ...(Option.isSome(extraCaCerts) ? { extraCaCerts: extraCaCerts.value } : {}),
      ...(verificationOverrides.length === 0 ? {} : { verificationOverrides }),
      ...(Option.isSome(assembled.right.passwordVariable)
        ? { passwordVariable: assembled.right.passwordVariable.value }
        : {}),
      ...(dotEnv === undefined ? {} : { dotEnv })
    }
    return { settings: assembled.right.settings, facts }
  })
