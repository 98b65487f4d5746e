/**
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { ConfigError } from "./ConfigError.js"
import type { DbSettings } from "./DbSettings.js"
import type { InsecureConfiguration } from "./InsecureConfiguration.js"
import * as internal from "./internal/load.js"
import * as NodeFileSystem from "./internal/nodeFileSystem.js"
import * as SecurityPolicy from "./SecurityPolicy.js"
import { testSettings, type TestSettingsInput } from "./TestSettings.js"

/**
 * How `DbConfig.make` / `DbConfig.layerFromEnvironment` read the environment.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadOptions {
  /**
   * The dotenv file to consider, relative to the working directory: loaded in development and
   * test (variables set in the environment win), never loaded elsewhere (a warning; refused in
   * production when it holds `DB_PASSWORD`). `false` ignores dotenv files. Default `.env`.
   */
  readonly dotEnv?: string | false
}

const load = (
  options: LoadOptions = {}
): Effect.Effect<internal.Loaded, ConfigError, FileSystem.FileSystem> =>
  internal.load(options).pipe(Effect.withSpan("DbConfig.load"))

const make = (options: LoadOptions = {}): Effect.Effect<DbSettings, ConfigError | InsecureConfiguration, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { facts, settings } = yield* internal.load(options)
    yield* SecurityPolicy.check(settings, facts)
    yield* Effect.logDebug("Database configuration loaded").pipe(
      Effect.annotateLogs({
        environment: settings.environment,
        host: settings.host,
        port: settings.port,
        database: settings.database,
        tls: settings.tls.enabled,
        secretsBackend: settings.secrets.backend
      })
    )
    return settings
  }).pipe(Effect.withSpan("DbConfig.make"))

/**
 * The validated database configuration of the running program.
 *
 * - `DbConfig.layer`: decode the active `ConfigProvider` (the process environment unless a test
 *   sets another with `Layer.setConfigProvider`), load `.env` in development and test, enforce
 *   the `SecurityPolicy`. Fails with `ConfigError` (every invalid variable at once) or
 *   `InsecureConfiguration`.
 * - `DbConfig.layerFromEnvironment(options)`: the same with another dotenv path (or none).
 * - `DbConfig.make(options)`: the same as an `Effect` of the settings (needs a `FileSystem`).
 * - `DbConfig.layerFrom(settings)`: an already-built settings value, policy checked.
 * - `DbConfig.layerTest(partial)`: test defaults merged with `partial`, no policy check.
 *
 * @since 0.1.0
 * @category tags
 */
export class DbConfig extends Context.Tag("@takumi/config/DbConfig")<DbConfig, DbSettings>() {
  /**
   * The settings from the active `ConfigProvider`, `.env` handled, policy enforced.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly make: (
    options?: LoadOptions
  ) => Effect.Effect<DbSettings, ConfigError | InsecureConfiguration, FileSystem.FileSystem> = make

  /**
   * Decodes and validates the settings **without** enforcing the policy, together with the facts
   * about the environment the policy needs (`.env` contents, `NODE_TLS_REJECT_UNAUTHORIZED`,
   * `VAULT_SKIP_VERIFY`). For reports that list every finding — `SecurityPolicy.evaluate(settings,
   * facts)` — rather than stopping at the first refusal (e.g. `takumi-db doctor`). A program that
   * connects uses `make` / `layer`, never this.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly load: (
    options?: LoadOptions
  ) => Effect.Effect<
    { readonly settings: DbSettings; readonly facts: SecurityPolicy.EnvironmentFacts },
    ConfigError,
    FileSystem.FileSystem
  > = load

  /**
   * `make` as a layer, with the Node `FileSystem` provided (certificate files, `.env`).
   *
   * @since 0.1.0
   * @category layers
   */
  static layerFromEnvironment(options: LoadOptions = {}): Layer.Layer<DbConfig, ConfigError | InsecureConfiguration> {
    return Layer.effect(DbConfig, make(options)).pipe(Layer.provide(NodeFileSystem.layer))
  }

  /**
   * The default layer: the environment (or the active `ConfigProvider`) and `./.env`. One value,
   * so that every use of it in a program shares one build.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer: Layer.Layer<DbConfig, ConfigError | InsecureConfiguration> = Layer.effect(
    this,
    make()
  ).pipe(Layer.provide(NodeFileSystem.layer))

  /**
   * A settings value built elsewhere (code, another config system), checked by the policy.
   *
   * @since 0.1.0
   * @category layers
   */
  static layerFrom(settings: DbSettings): Layer.Layer<DbConfig, InsecureConfiguration> {
    return Layer.effect(DbConfig, Effect.as(SecurityPolicy.check(settings), settings))
  }

  /**
   * `testSettings(partial)` as a layer, for other packages' tests. No policy check: a test may
   * want a configuration the policy would refuse.
   *
   * @since 0.1.0
   * @category layers
   */
  static layerTest(partial: TestSettingsInput = {}): Layer.Layer<DbConfig> {
    return Layer.succeed(DbConfig, testSettings(partial))
  }
}
