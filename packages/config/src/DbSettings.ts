/**
 * The typed, validated settings that every other Takumi DB package reads. `DbConfig` decodes the
 * environment into this shape; nothing downstream ever looks at a raw variable again.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"

/**
 * `NODE_ENV`. Production turns the security policy into hard refusals.
 *
 * @since 0.1.0
 * @category models
 */
export type Environment = "development" | "test" | "staging" | "production"

/**
 * `SECRETS_BACKEND`.
 *
 * @since 0.1.0
 * @category models
 */
export type SecretsBackendKind = "aws-secrets-manager" | "vault" | "env" | "rds-iam"

/**
 * `DB_SSL_MIN_VERSION`. Versions below TLSv1.2 decode (so development can reach an old server)
 * but the production policy refuses them.
 *
 * @since 0.1.0
 * @category models
 */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"

/**
 * Where a PEM document comes from: a file path (checked to exist and be readable when the
 * configuration is decoded, read by the consumer when it builds a connection) or inline PEM
 * text in the variable itself. Inline PEM is kept `Redacted` because a private key may be one.
 *
 * @since 0.1.0
 * @category models
 */
export type PemSource =
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Inline"; readonly pem: Redacted.Redacted<string> }

/**
 * @since 0.1.0
 * @category models
 */
export interface TlsSettings {
  /** `DB_SSL` */
  readonly enabled: boolean
  /** `DB_SSL_REJECT_UNAUTHORIZED` (default true) */
  readonly rejectUnauthorized: boolean
  /** `DB_SSL_CA` */
  readonly ca: Option.Option<PemSource>
  /** `DB_SSL_CERT` */
  readonly cert: Option.Option<PemSource>
  /** `DB_SSL_KEY` */
  readonly key: Option.Option<PemSource>
  /** `DB_SSL_KEY_PASSPHRASE` */
  readonly keyPassphrase: Option.Option<Redacted.Redacted<string>>
  /** `DB_SSL_CRL`: a certificate revocation list (PEM file or inline); a revoked server certificate is refused */
  readonly crl: Option.Option<PemSource>
  /** `DB_SSL_MIN_VERSION` (default TLSv1.2) */
  readonly minVersion: TlsVersion
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PoolSettings {
  /** `DB_POOL_MIN` (default from the environment's preset) */
  readonly min: number
  /** `DB_POOL_MAX` (default from the environment's preset) */
  readonly max: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReplicaSettings {
  /** `DB_READ_REPLICA_HOST` */
  readonly host: string
  /** `DB_READ_REPLICA_PORT` (default: the primary's port) */
  readonly port: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AwsSecretsSettings {
  /** `AWS_REGION` */
  readonly region: string
  /** `AWS_ENDPOINT_URL_SECRETS_MANAGER` (VPC endpoints, local emulators, test doubles) */
  readonly endpoint: Option.Option<string>
  /** `AWS_MAX_ATTEMPTS` (default 3) */
  readonly maxAttempts: number
  /** `AWS_CA_BUNDLE`: the CA bundle for a private endpoint (as the AWS CLI names it); else the public store */
  readonly caBundle: Option.Option<PemSource>
}

/**
 * A secret given inline (`VAULT_SECRET_ID`) or as the path of a file the platform mounts
 * (`VAULT_SECRET_ID_FILE`), read at each login so a rotated file is picked up.
 *
 * @since 0.1.0
 * @category models
 */
export type SecretSource =
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Inline"; readonly value: Redacted.Redacted<string> }

/**
 * How the Vault backend gets its token (`VAULT_AUTH_METHOD`, default `token`): a static
 * `VAULT_TOKEN`, or a login at `auth/<mount>/login` with AppRole (`VAULT_ROLE_ID` and
 * `VAULT_SECRET_ID` or `VAULT_SECRET_ID_FILE`), Kubernetes (`VAULT_ROLE`, the service-account
 * token file `VAULT_JWT_FILE`) or JWT (`VAULT_ROLE`, `VAULT_JWT_FILE`). `mount` is
 * `VAULT_AUTH_MOUNT`, by default the method's name.
 *
 * @since 0.1.0
 * @category models
 */
export type VaultAuth =
  | { readonly method: "token"; readonly token: Redacted.Redacted<string> }
  | { readonly method: "approle"; readonly mount: string; readonly roleId: string; readonly secretId: SecretSource }
  | {
    readonly method: "kubernetes" | "jwt"
    readonly mount: string
    readonly role: string
    /** the JWT is read from this file at each login (Kubernetes rotates projected tokens) */
    readonly jwtFile: string
  }

/**
 * @since 0.1.0
 * @category models
 */
export interface VaultSettings {
  /** `VAULT_ADDR` */
  readonly address: string
  /** `VAULT_AUTH_METHOD` and its inputs (`VAULT_TOKEN` for `token`) */
  readonly auth: VaultAuth
  /** `VAULT_PATH`, e.g. `secret/takumi/production` (KV v2 mount first) */
  readonly path: string
  /** `VAULT_NAMESPACE` (Vault Enterprise / HCP) */
  readonly namespace: Option.Option<string>
  /** `VAULT_CACERT` */
  readonly caCert: Option.Option<PemSource>
  /**
   * `VAULT_REDIRECT_HOSTS`: hosts besides `VAULT_ADDR`'s own (any port: a standby) that a redirect
   * may lead to; anything else is refused before the token is sent. Empty by default.
   */
  readonly redirectHosts: ReadonlyArray<string>
  /**
   * `VAULT_DB_ROLE` (and `VAULT_DB_MOUNT`, default `database`): dynamic database credentials from
   * the database secrets engine, user name and password together, instead of `DB_PASSWORD` from KV.
   */
  readonly database: Option.Option<VaultDatabaseSettings>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface VaultDatabaseSettings {
  /** `VAULT_DB_ROLE`: credentials are read from `<mount>/creds/<role>` */
  readonly role: string
  /** `VAULT_DB_MOUNT`, `database` by default */
  readonly mount: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SecretsSettings {
  /** `SECRETS_BACKEND` */
  readonly backend: SecretsBackendKind
  /** `SECRETS_CACHE_TTL` (ms, default 5 min) */
  readonly cacheTtl: Duration.Duration
  /** `SECRETS_MAX_STALE` (ms, default 10 min): how long an expired value may be served while the backend is unavailable */
  readonly maxStale: Duration.Duration
  /** `SECRETS_REQUEST_TIMEOUT` (ms, default 3000): bound on one backend request */
  readonly requestTimeout: Duration.Duration
  /** `SECRETS_PREFIX` (default `takumi/<environment>/`) */
  readonly prefix: string
  /** present when the backend is `aws-secrets-manager` or `rds-iam` (which uses `region` only) */
  readonly aws: Option.Option<AwsSecretsSettings>
  /** present when the backend is `vault` */
  readonly vault: Option.Option<VaultSettings>
}

/**
 * Alert thresholds; defaults from the requirements' monitoring section.
 *
 * @since 0.1.0
 * @category models
 */
export interface AlertSettings {
  /** failed authentications that raise an alert (default 5) ... */
  readonly failedAuthThreshold: number
  /** ... within this window (default 5 min) */
  readonly failedAuthWindow: Duration.Duration
  /** pool use, as a fraction of max, that raises an alert (default 0.9) */
  readonly poolUsageRatio: number
  /** queries slower than this raise an alert (default 5 s) */
  readonly slowQuery: Duration.Duration
  /** certificates expiring within this raise an alert (default 30 days) */
  readonly certificateExpiry: Duration.Duration
  /**
   * `DB_CREDENTIAL_MAX_AGE` (days, default 90): a password secret last changed longer ago raises
   * `CredentialRotationOverdue` (at startup and daily); production refuses more than 90 days
   */
  readonly credentialMaxAge: Duration.Duration
}

/**
 * `DB_CHANNEL_BINDING` (libpq `channel_binding`): `require` accepts only SCRAM-SHA-256-PLUS, bound
 * to the server's TLS certificate; `prefer` uses it whenever the server offers it; `disable` never.
 *
 * @since 0.1.0
 * @category models
 */
export type ChannelBinding = "disable" | "prefer" | "require"

/**
 * `DB_POOLER`: what sits between the client and PostgreSQL. `none` (the default): the client talks
 * to PostgreSQL itself. `pgbouncer`: a PgBouncer in transaction pooling mode; the statement bounds
 * are then not sent as startup parameters (PgBouncer refuses them) but checked against the
 * server's own settings, and the startup check reads `pg_stat_ssl` as PgBouncer's leg to the
 * server (see the @takumi/db README, "Behind PgBouncer").
 *
 * @since 0.1.0
 * @category models
 */
export type Pooler = "none" | "pgbouncer"

/**
 * An authentication method the server may ask for (libpq `require_auth` names): `scram-sha-256`
 * (with or without channel binding), `md5`, `password` (cleartext), `none` (the server asks for no
 * password: certificate authentication or trust).
 *
 * @since 0.1.0
 * @category models
 */
export type AuthMethod = "scram-sha-256" | "md5" | "password" | "none"

/**
 * How the client may authenticate: checked when the server asks, before the password leaves the
 * process.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthSettings {
  /** `DB_CHANNEL_BINDING` (default `prefer`) */
  readonly channelBinding: ChannelBinding
  /**
   * `DB_REQUIRE_AUTH`: the methods the server may ask for; any other is refused. Default in
   * production and staging `scram-sha-256,none`; in development and test every method (md5 and
   * cleartext then warn once).
   */
  readonly requireAuth: ReadonlyArray<AuthMethod>
}

/**
 * One server of a host list: where a connection may go.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerAddress {
  readonly host: string
  readonly port: number
}

/**
 * `DB_TARGET_SESSION_ATTRS` (libpq `target_session_attrs`): which of the listed hosts a new
 * connection may stay on. `read-write`: a server whose sessions accept writes (not a hot standby,
 * `default_transaction_read_only` off); `primary`: not a hot standby; `standby`: a hot standby;
 * `prefer-standby`: a standby when one answers, else any; `any`: the first that answers.
 *
 * @since 0.1.0
 * @category models
 */
export type TargetSessionAttrs = "any" | "read-write" | "primary" | "standby" | "prefer-standby"

/**
 * `DB_LOAD_BALANCE_HOSTS` (libpq `load_balance_hosts`): `disable` tries the hosts in the listed
 * order; `random` spreads new connections over the hosts that fit.
 *
 * @since 0.1.0
 * @category models
 */
export type LoadBalanceHosts = "disable" | "random"

/**
 * Everything Takumi DB needs to know, decoded and validated.
 *
 * @since 0.1.0
 * @category models
 */
export interface DbSettings {
  /** `NODE_ENV` */
  readonly environment: Environment
  /** `DB_HOST`: the first host of the list (`hosts[0].host`) */
  readonly host: string
  /** `DB_PORT` (default 5432): the first host's port (`hosts[0].port`) */
  readonly port: number
  /**
   * Every host of `DB_HOST` (or of `DATABASE_URL`), in the listed order; one entry, `host`/`port`,
   * when a single host is given. An entry without its own port takes `DB_PORT`.
   */
  readonly hosts: ReadonlyArray<ServerAddress>
  /** `DB_TARGET_SESSION_ATTRS` (default `read-write` with more than one host, `any` with one) */
  readonly targetSessionAttrs: TargetSessionAttrs
  /** `DB_LOAD_BALANCE_HOSTS` (default `disable`) */
  readonly loadBalanceHosts: LoadBalanceHosts
  /** `DB_NAME` */
  readonly database: string
  /** `DB_USER` */
  readonly user: string
  /** `DB_PASSWORD`: read only by the `env` secrets backend; refused in production */
  readonly password: Option.Option<Redacted.Redacted<string>>
  /** `DB_APPLICATION_NAME` (default `takumi-db`) */
  readonly applicationName: string
  readonly tls: TlsSettings
  readonly pool: PoolSettings
  /** `DB_CONNECTION_TIMEOUT` (ms, default 2000) */
  readonly connectTimeout: Duration.Duration
  /** `DB_IDLE_TIMEOUT` (ms, default 30000) */
  readonly idleTimeout: Duration.Duration
  readonly auth: AuthSettings
  /** `DB_STATEMENT_TIMEOUT` (ms, default 30000; 0 = none): the server's `statement_timeout`, set at connect */
  readonly statementTimeout: Duration.Duration
  /**
   * `DB_IDLE_IN_TRANSACTION_TIMEOUT` (ms, default 60000; 0 = none): the server's
   * `idle_in_transaction_session_timeout`, set at connect
   */
  readonly idleInTransactionTimeout: Duration.Duration
  /**
   * `DB_QUERY_TIMEOUT` (ms; 0 = none): the client's own bound on one statement (pg's
   * `query_timeout`), for a peer that stops answering. Default: the statement timeout + 5000 ms
   * (so the server's own cancellation normally arrives first), 0 when the statement timeout is 0.
   */
  readonly queryTimeout: Duration.Duration
  /**
   * `DB_MAX_LIFETIME` (ms, default 1800000 = 30 min; 0 = none): a connection older than this,
   * less a random 0–2.5 % so that connections opened together do not retire together, is closed
   * when it is next idle (never under a statement), so rotated credentials, DNS changes and a moved
   * primary reach every connection in bounded time.
   */
  readonly maxLifetime: Duration.Duration
  /** `DB_POOLER` (default `none`) */
  readonly pooler: Pooler
  readonly readReplica: Option.Option<ReplicaSettings>
  /** `DB_FAILOVER_TIMEOUT` (ms, default 5000) */
  readonly failoverTimeout: Duration.Duration
  readonly secrets: SecretsSettings
  readonly alerts: AlertSettings
}
