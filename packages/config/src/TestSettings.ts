/**
 * Settings for tests: sensible local defaults that a test overrides only where it cares.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import type { AlertSettings, AuthSettings, DbSettings, PoolSettings, SecretsSettings, TlsSettings } from "./DbSettings.js"
import * as Defaults from "./Defaults.js"
import * as PoolSizing from "./PoolSizing.js"

/**
 * A partial `DbSettings`: top-level fields replace the defaults; `tls`, `pool`, `secrets` and
 * `alerts` are merged field by field, so `{ tls: { enabled: false } }` keeps the other TLS
 * defaults.
 *
 * @since 0.1.0
 * @category models
 */
export type TestSettingsInput =
  & Partial<Omit<DbSettings, "tls" | "pool" | "secrets" | "alerts" | "auth">>
  & {
    readonly auth?: Partial<AuthSettings>
    readonly tls?: Partial<TlsSettings>
    readonly pool?: Partial<PoolSettings>
    readonly secrets?: Partial<SecretsSettings>
    readonly alerts?: Partial<AlertSettings>
  }

/**
 * Test defaults merged with `partial`: environment `test`, `127.0.0.1:5432`, database and user
 * `postgres`, no password, TLS on with certificate validation and no CA / client files, TLSv1.2
 * minimum, pool 1..3, the `env` secrets backend with prefix `takumi/test/`, and every timeout and
 * alert threshold at its documented default. Nothing is validated and no policy is checked.
 *
 * @since 0.1.0
 * @category constructors
 */
export const testSettings = (partial: TestSettingsInput = {}): DbSettings => {
  const { alerts, auth, pool, secrets, tls, ...top } = partial
  const environment = top.environment ?? "test"
  const hosts = top.hosts ?? [{ host: top.host ?? "127.0.0.1", port: top.port ?? Defaults.port }]
  return {
    environment,
    database: "postgres",
    user: "postgres",
    password: Option.none(),
    applicationName: Defaults.applicationName,
    connectTimeout: Defaults.connectTimeout,
    idleTimeout: Defaults.idleTimeout,
    readReplica: Option.none(),
    failoverTimeout: Defaults.failoverTimeout,
    statementTimeout: Defaults.statementTimeout,
    idleInTransactionTimeout: Defaults.idleInTransactionTimeout,
    queryTimeout: Defaults.queryTimeout(top.statementTimeout ?? Defaults.statementTimeout),
    maxLifetime: Defaults.maxLifetime,
    pooler: Defaults.pooler,
    ...top,
    // one host unless the test lists several (`host`/`port` are then the first)
    hosts,
    host: hosts[0]?.host ?? "127.0.0.1",
    port: hosts[0]?.port ?? Defaults.port,
    targetSessionAttrs: top.targetSessionAttrs ?? ((top.hosts?.length ?? 1) > 1 ? "read-write" : "any"),
    loadBalanceHosts: top.loadBalanceHosts ?? "disable",
    auth: { channelBinding: Defaults.channelBinding, requireAuth: Defaults.requireAuth(environment), ...auth },
    tls: {
      enabled: true,
      rejectUnauthorized: true,
      ca: Option.none(),
      cert: Option.none(),
      key: Option.none(),
      keyPassphrase: Option.none(),
      crl: Option.none(),
      minVersion: Defaults.tlsMinVersion,
      ...tls
    },
    pool: { ...PoolSizing.presets.test, ...pool },
    secrets: {
      backend: "env",
      cacheTtl: Defaults.secretsCacheTtl,
      maxStale: Defaults.secretsMaxStale,
      requestTimeout: Defaults.secretsRequestTimeout,
      prefix: Defaults.secretsPrefix(environment),
      aws: Option.none(),
      vault: Option.none(),
      ...secrets
    },
    alerts: { ...Defaults.alerts, ...alerts }
  }
}
