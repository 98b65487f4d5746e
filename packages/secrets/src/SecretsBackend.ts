/**
 * @since 0.1.0
 */
import { DbConfig, type DbSettings, type PemSource } from "@takumi/config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as AwsBackend from "./internal/aws/backend.js"
import * as EnvBackend from "./internal/envBackend.js"
import * as SecretCache from "./internal/secretCache.js"
import * as TestBackend from "./internal/testBackend.js"
import * as VaultBackend from "./internal/vault/backend.js"
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
   * backend cannot tell (env, test). An optional capability: a service without it cannot tell
   * either (see `SecretsBackend.describe`). Fails `SecretAccessDenied` without the permission
   * (`secretsmanager:DescribeSecret`, Vault `read` on `<mount>/metadata/<path>`).
   */
  readonly describe?: (key: string) => Effect.Effect<Option.Option<SecretMetadata>, SecretError>
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

const makeAwsSecretsManager = (
  settings: DbSettings
): Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> =>
  Option.match(settings.secrets.aws, {
    onNone: () => Effect.fail(missingSettings("aws-secrets-manager", "AWS_REGION", "AWS settings (region)")),
    onSome: (aws) =>
      Effect.gen(function*() {
        const ca = yield* readCa(aws.caBundle, {
          backend: "aws-secrets-manager",
          variable: "AWS_CA_BUNDLE",
          server: "the Secrets Manager endpoint's certificate"
        })
        const { describe, lookup } = yield* AwsBackend.make({
          region: aws.region,
          endpoint: aws.endpoint,
          maxAttempts: aws.maxAttempts,
          prefix: settings.secrets.prefix,
          ca,
          requestTimeout: settings.secrets.requestTimeout
        })
        return { ...(yield* cached("aws-secrets-manager", settings, lookup)), describe }
      })
  })

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
        const { describe, lookup } = yield* VaultBackend.make({
          address: vault.address,
          auth: vault.auth,
          path: vault.path,
          namespace: vault.namespace,
          ca,
          redirectHosts: vault.redirectHosts,
          requestTimeout: settings.secrets.requestTimeout
        })
        return { ...(yield* cached("vault", settings, lookup)), describe }
      })
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
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly makeVault: (
    settings: DbSettings
  ) => Effect.Effect<SecretsBackendService, SecretsBackendUnavailable, Scope.Scope> = makeVault

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
   * The backend `SECRETS_BACKEND` names (`aws-secrets-manager`, `vault` or `env`), from `DbConfig`.
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
