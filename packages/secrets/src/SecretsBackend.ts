/**
 * @since 0.1.0
 */
import { type AwsSecretsSettings, DbConfig, type DbSettings, type PemSource } from "@takumi/config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as AwsBackend from "./internal/aws/backend.js"
import * as RdsIam from "./internal/aws/rdsIam.js"
import * as EnvBackend from "./internal/envBackend.js"
import * as SecretCache from "./internal/secretCache.js"
import * as TestBackend from "./internal/testBackend.js"
import * as VaultBackend from "./internal/vault/backend.js"
import * as VaultDynamic from "./internal/vault/dynamicCredentials.js"
import type { DatabaseCredentials } from "./DatabaseCredentials.js"
import { type BackendName, type SecretError, SecretsBackendUnavailable } from "./SecretError.js"
import type { SecretMetadata } from "./SecretMetadata.js"

/**
 * The service a `SecretsBackend` provides.
 *
 * @since 0.1.0
 * @category models
 */
export interface SecretsBackendService {
  readonly get: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
  readonly invalidate: (key: string) => Effect.Effect<void>
  /**
   * The secret's metadata (age, rotation), read from the backend uncached: `None` when the
   * backend cannot tell (env, test) or an age does not apply (dynamic credentials, which have
   * leases: such a backend answers `None`, and the credential-age check exempts it). An optional
   * capability: a service without it cannot tell either (see `SecretsBackend.describe`). Fails `SecretAccessDenied` without the permission
   * (`secretsmanager:DescribeSecret`, Vault `read` on `<mount>/metadata/<path>`).
   */
  readonly describe?: (key: string) => Effect.Effect<Option.Option<SecretMetadata>, SecretError>
  /**
   * The value a rotation in progress is about to make current, read from the backend uncached:
   * `None` when no rotation is in progress. An optional capability: only AWS Secrets Manager has
   * it (`GetSecretValue` with `VersionStage=AWSPENDING`). @takumi/db tries it once when the
   * database refused the current value even after a re-read: between a rotation's `setSecret`
   * and `finishSecret` steps the database accepts only the pending value.
   */
  readonly pending?: (key: string) => Effect.Effect<Option.Option<Redacted.Redacted<string>>, SecretError>
  /**
   * Dynamic database credentials (Vault with `VAULT_DB_ROLE`): user name and password together,
   * per new connection, rolled over before their lease ends. Present only on such a backend; its
   * `get("DB_PASSWORD")` is then the current pair's password and `describe("DB_PASSWORD")` is
   * `None` (leases have lifetimes, not ages: the credential-age check does not apply).
   */
  readonly databaseCredentials?: DatabaseCredentials
}

const cached = (
  backend: BackendName,
  settings: DbSettings,
  lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
) => SecretCache.make({ backend, lookup, ttl: settings.secrets.cacheTtl, maxStale: settings.secrets.maxStale })

const missingSettings = (backend: BackendName, variable: string, needs: string) =>
  new SecretsBackendUnavailable({
    backend,
    key: variable,
    message: `SECRETS_BACKEND=${backend} has no ${needs} in the configuration. Fix: set ${variable}.`
  })

/** The AWS settings both AWS backends need (`AWS_REGION` at least), or the error naming it. */
const withAwsSettings = (
  backend: "aws-secrets-manager" | "rds-iam",
  settings: DbSettings,
  make: (aws: AwsSecretsSettings) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope>
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> =>
  Option.match(settings.secrets.aws, {
    onNone: () => Effect.fail(missingSettings(backend, "AWS_REGION", "AWS settings (region)")),
    onSome: make
  })

const makeAwsSecretsManager = (
  settings: DbSettings
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> =>
  withAwsSettings("aws-secrets-manager", settings, (aws) =>
      Effect.gen(function*() {
        const ca = yield* readCa(aws.caBundle, {
          backend: "aws-secrets-manager",
          variable: "AWS_CA_BUNDLE",
          server: "the Secrets Manager endpoint's certificate"
        })
        const { describe, lookup, pending } = yield* AwsBackend.make({
          region: aws.region,
          endpoint: aws.endpoint,
          maxAttempts: aws.maxAttempts,
          prefix: settings.secrets.prefix,
          ca,
          requestTimeout: settings.secrets.requestTimeout
        })
        return { ...(yield* cached("aws-secrets-manager", settings, lookup)), describe, pending }
      }))

/**
 * The PEM text of a CA bundle setting (`VAULT_CACERT`, `AWS_CA_BUNDLE`): inline, or read from its
 * file; `undefined` when it is not set (the public CA store then applies).
 */
const readCa = (
  setting: Option.Option<PemSource>,
  where: {
    readonly backend: BackendName
    readonly variable: string
    /** The certificate the CA signed, for the fix, e.g. `the Vault server certificate`. */
    readonly server: string
  }
): Effect.Effect<string | undefined, SecretsBackendUnavailable> =>
  Option.match(setting, { onNone: () => Effect.succeed(undefined), onSome: (source) => readPem(source, where) })

const readPem = (
  source: PemSource,
  setting: {
    readonly backend: BackendName
    readonly variable: string
    /** The certificate the CA signed, for the fix, e.g. `the Vault server certificate`. */
    readonly server: string
  }
): Effect.Effect<string, SecretsBackendUnavailable> =>
  source._tag === "Inline"
    ? Effect.succeed(Redacted.value(source.pem))
    : Effect.tryPromise({
      try: () => Fs.readFile(source.path, "utf8"),
      catch: (error) =>
        new SecretsBackendUnavailable({
          backend: setting.backend,
          key: setting.variable,
          message: `Could not read the CA bundle ${setting.variable}=${source.path} (${
            typeof error === "object" && error !== null && "code" in error ? String(error.code) : "read error"
          }). Fix: point ${setting.variable} at a readable PEM file with the CA that signed ${setting.server}.`
        })
    })

const makeVault = (
  settings: DbSettings
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> =>
  Option.match(settings.secrets.vault, {
    onNone: () => Effect.fail(missingSettings("vault", "VAULT_ADDR", "Vault settings (address, auth, path)")),
    onSome: (vault) =>
      Effect.gen(function*() {
        const ca = yield* readCa(vault.caCert, {
          backend: "vault",
          variable: "VAULT_CACERT",
          server: "the Vault server certificate"
        })
        const { describe, lookup, read, write } = yield* VaultBackend.make({
          address: vault.address,
          auth: vault.auth,
          path: vault.path,
          namespace: vault.namespace,
          ca,
          redirectHosts: vault.redirectHosts,
          requestTimeout: settings.secrets.requestTimeout
        })
        const kv = { ...(yield* cached("vault", settings, lookup)), describe }
        return yield* Option.match(vault.database, {
          onNone: () => Effect.succeed(kv),
          onSome: (database) =>
            Effect.map(
              VaultDynamic.make({ read, write, ...database, requestTimeout: settings.secrets.requestTimeout }),
              (credentials) => withDatabaseCredentials(kv, credentials)
            )
        })
      }).pipe(Effect.catchTags({
        // the first pair is read when the backend is built: without it there is nothing to connect with
        SecretNotFound: toUnavailable,
        SecretAccessDenied: toUnavailable,
        SecretMalformed: toUnavailable
      }))
  })

const makeRdsIam = (
  settings: DbSettings
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> =>
  withAwsSettings("rds-iam", settings, (aws) =>
      Effect.flatMap(
        RdsIam.make({
          region: aws.region,
          hostname: settings.host,
          port: settings.port,
          username: settings.user,
          requestTimeout: settings.secrets.requestTimeout
        }),
        (lookup) =>
          SecretCache.make({
            backend: "rds-iam",
            lookup,
            ttl: RdsIam.tokenTtl(settings.secrets.cacheTtl),
            maxStale: RdsIam.tokenMaxStale(settings.secrets.cacheTtl)
          })
      ))
const toUnavailable = (error: SecretError) =>
  Effect.fail(new SecretsBackendUnavailable({ backend: error.backend, key: error.key, message: error.message }))

/** The password key @takumi/db asks for, answered from the dynamic pair. */
const passwordKey = "DB_PASSWORD"

/**
 * A KV backend whose `DB_PASSWORD` is the current dynamic pair's password, exempt from the
 * credential-age check (`describe` gives `None` for it), with the pairs as `databaseCredentials`.
 */
const withDatabaseCredentials = (
  kv: SecretsBackendService & Required<Pick<SecretsBackendService, "describe">>,
  credentials: DatabaseCredentials
): SecretsBackendService => ({
  get: (key) => key === passwordKey ? Effect.map(credentials.current, (pair) => pair.password) : kv.get(key),
  // nothing cached to forget: a 28P01 retry already takes the newest pair, and a revoked lease is
  // noticed by the next renewal, which rolls over at once
  invalidate: (key) => key === passwordKey ? Effect.void : kv.invalidate(key),
  describe: (key) => key === passwordKey ? Effect.succeed(Option.none()) : kv.describe(key),
  databaseCredentials: credentials
})

const makeEnv = (settings: DbSettings): Effect.Effect<SecretsBackendService, never, Scope.Scope> =>
  Effect.flatMap(EnvBackend.make(settings), (lookup) => cached("env", settings, lookup))

const makeFromSettings = (
  settings: DbSettings
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> => {
  switch (settings.secrets.backend) {
    case "aws-secrets-manager":
      return makeAwsSecretsManager(settings)
    case "vault":
      return makeVault(settings)
    case "env":
      return makeEnv(settings)
    case "rds-iam":
      return makeRdsIam(settings)
  }
}

/**
 * Where credentials come from. `get` resolves a key such as `DB_PASSWORD` to its value, kept
 * `Redacted`; `invalidate` forgets a cached value so the next `get` reads the backend again
 * (used after an authentication failure that suggests the secret was rotated), at most once per
 * key per `SecretCache.defaultReReadInterval` (10 s).
 *
 * - `SecretsBackend.layerFromConfig`: the backend `SECRETS_BACKEND` names, from `DbConfig`.
 * - `SecretsBackend.layerAwsSecretsManager` / `layerVault` / `layerEnv`: one backend, from `DbConfig`.
 * - `SecretsBackend.makeAwsSecretsManager(settings)` etc.: the same as scoped Effects.
 * - `SecretsBackend.layerTest(entries)` / `layerTestFromRef(ref)`: in memory, uncached, for tests.
 *
 * Every backend except the test one sits behind a `SecretCache` (TTL `SECRETS_CACHE_TTL`,
 * stale window `SECRETS_MAX_STALE`, re-reads forced by `invalidate` rate-limited per key).
 *
 * @since 0.1.0
 * @category tags
 */
export class SecretsBackend extends Context.Tag("@takumi/secrets/SecretsBackend")<SecretsBackend, SecretsBackendService>() {
  /**
   * The metadata of `key` from the backend in context; `None` when the backend cannot tell (the
   * env and test backends, or any service without `describe`).
   *
   * @since 0.1.0
   * @category accessors
   */
  static describe(key: string): Effect.Effect<Option.Option<SecretMetadata>, SecretError, SecretsBackend> {
    return Effect.flatMap(this, (backend) =>
      backend.describe === undefined ? Effect.succeed(Option.none()) : backend.describe(key))
  }

  /**
   * The AWS Secrets Manager backend, cached, from settings: secret id `<SECRETS_PREFIX><KEY>`
   * (e.g. `takumi/production/DB_PASSWORD`), region `AWS_REGION`, optional endpoint
   * `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_MAX_ATTEMPTS`, `AWS_CA_BUNDLE` (a private endpoint's
   * CA; TLS is verified whatever the environment says), every read bounded by
   * `SECRETS_REQUEST_TIMEOUT`, credentials from the SDK's default chain (IAM role first in AWS).
   * The backend reads the key asked for (`DB_PASSWORD` is the one @takumi/db asks for): a JSON
   * object secret yields field `KEY`, for `DB_PASSWORD` also the RDS rotation format's
   * `password` (its `username`, `host` and `port` are not read: the connection's user, host and
   * port come from the configuration); a JSON number field must be a safe integer. Text that
   * starts with `{` or `[` but is not a JSON object is `SecretMalformed`; any other string (or
   * UTF-8 `SecretBinary`) is the value itself.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeAwsSecretsManager: (
    settings: DbSettings
  ) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> = makeAwsSecretsManager

  /**
   * The HashiCorp Vault backend, cached, from settings: KV v2 at `VAULT_PATH` (mount first:
   * `secret/takumi/production` is read as `GET /v1/secret/data/takumi/production`), field `KEY`
   * of `data.data` (@takumi/db asks for `DB_PASSWORD` only; a JSON number must be a safe
   * integer), optional `VAULT_NAMESPACE` and `VAULT_CACERT`, every read bounded by
   * `SECRETS_REQUEST_TIMEOUT`. The token is `VAULT_TOKEN` (`VAULT_AUTH_METHOD=token`) or the one
   * an AppRole, Kubernetes or JWT login got (`VAULT_AUTH_METHOD`, `VAULT_AUTH_MOUNT`); either is
   * looked up (or logged in) when the backend is built, renewed at 2/3 of its TTL, replaced by a
   * new login when it cannot be renewed, and never sent once known to be expired (see the README).
   * TLS verification is always on, redirects go only to `VAULT_ADDR`'s host or
   * `VAULT_REDIRECT_HOSTS`, no `VAULT_*` or proxy variable is read behind the configuration, and the token never appears in an error or log line.
   * With `VAULT_DB_ROLE` the database user and password are dynamic credentials from
   * `<VAULT_DB_MOUNT>/creds/<role>` (`databaseCredentials`): the first pair is read here (the
   * backend fails to build without it), the lease is renewed and rolled over in a fiber of the
   * scope, and every lease still alive is revoked when the scope closes
   * (internal/vault/dynamicCredentials.ts).
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeVault: (
    settings: DbSettings
  ) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> = makeVault

  /**
   * RDS IAM authentication, cached: `get("DB_PASSWORD")` is an authentication token from
   * `@aws-sdk/rds-signer` (an optional peer dependency) for `DB_USER` at `DB_HOST`:`DB_PORT` in
   * `AWS_REGION`, signed with the SDK's default credential chain, valid 15 minutes and cached for
   * at most 10 (`SECRETS_CACHE_TTL` when shorter); other keys are `SecretNotFound`. The policy
   * refuses it without verified TLS (`rds-iam-tls`).
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeRdsIam: (
    settings: DbSettings
  ) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> = makeRdsIam

  /**
   * `makeRdsIam` with settings from `DbConfig`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerRdsIam: Layer.Layer<SecretsBackend, SecretsBackendUnavailable, DbConfig> = Layer.scoped(
    this,
    Effect.flatMap(DbConfig, makeRdsIam)
  )

  /**
   * The development backend, cached: `DB_PASSWORD`, `DB_USER`, `DB_HOST`, `DB_PORT`, `DB_NAME`
   * from the decoded settings. Logs a warning once, when built.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeEnv: (settings: DbSettings) => Effect.Effect<SecretsBackendService, never, Scope.Scope> = makeEnv

  /**
   * The backend `SECRETS_BACKEND` names, built from settings.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeFromSettings: (
    settings: DbSettings
  ) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> = makeFromSettings

  /**
   * `makeAwsSecretsManager` with settings from `DbConfig`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerAwsSecretsManager: Layer.Layer<SecretsBackend, SecretsBackendUnavailable, DbConfig> = Layer
    .scoped(this, Effect.flatMap(DbConfig, makeAwsSecretsManager))

  /**
   * `makeVault` with settings from `DbConfig`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerVault: Layer.Layer<SecretsBackend, SecretsBackendUnavailable, DbConfig> = Layer.scoped(
    this,
    Effect.flatMap(DbConfig, makeVault)
  )

  /**
   * `makeEnv` with settings from `DbConfig`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerEnv: Layer.Layer<SecretsBackend, never, DbConfig> = Layer.scoped(
    this,
    Effect.flatMap(DbConfig, makeEnv)
  )

  /**
   * The backend `SECRETS_BACKEND` names (`aws-secrets-manager`, `vault`, `env` or `rds-iam`), from `DbConfig`.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerFromConfig: Layer.Layer<SecretsBackend, SecretsBackendUnavailable, DbConfig> = Layer.scoped(
    this,
    Effect.flatMap(DbConfig, makeFromSettings)
  )

  /**
   * An in-memory backend for tests, without a cache: every `get` reads the current entries,
   * and a key that is absent fails with `SecretNotFound` (backend `test`). To change entries
   * during a test (rotation, revocation), use `layerTestFromRef`.
   *
   * @since 0.1.0
   * @category layers
   */
  static layerTest(entries: Readonly<Record<string, string>>): Layer.Layer<SecretsBackend> {
    return Layer.effect(SecretsBackend, Effect.map(Ref.make(entries), TestBackend.make))
  }

  /**
   * Like `layerTest`, reading a `Ref` the test owns: `Ref.set(ref, { DB_PASSWORD: "new" })`
   * rotates a secret, removing a key revokes it.
   *
   * @since 0.1.0
   * @category layers
   */
  static layerTestFromRef(entries: Ref.Ref<Readonly<Record<string, string>>>): Layer.Layer<SecretsBackend> {
    return Layer.succeed(SecretsBackend, TestBackend.make(entries))
  }
}
