/**
 * Decoded variables -> one `DbSettings`: defaults, `DATABASE_URL` reconciliation and the rules
 * that involve more than one variable.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { ConfigIssue } from "../ConfigError.js"
import type { DbSettings, Environment, SecretsBackendKind, VaultAuth } from "../DbSettings.js"
import * as Defaults from "../Defaults.js"
import * as PoolSizing from "../PoolSizing.js"
import type { SslMode } from "./databaseUrl.js"
import { type VariableName, type Variables, variableInfo } from "./variables.js"
import { vaultAuthOf } from "./vaultAuth.js"

/** @internal */
export interface Assembled {
  readonly settings: DbSettings
  readonly passwordVariable: Option.Option<"DB_PASSWORD" | "DATABASE_URL">
}

/**
 * What each `sslmode` means for us. `require` is libpq's "encrypt but do not verify the server":
 * TLS on with `rejectUnauthorized=false`, which the policy refuses in staging and production.
 * `verify-ca` and `verify-full` both turn verification on; Node's TLS always checks the host name
 * as well, so `verify-ca` is held to `verify-full` (stricter, never weaker, than libpq).
 */
const sslModeTls: { readonly [M in SslMode]: { readonly enabled: boolean; readonly rejectUnauthorized: boolean } } = {
  "disable": { enabled: false, rejectUnauthorized: true },
  "require": { enabled: true, rejectUnauthorized: false },
  "verify-ca": { enabled: true, rejectUnauthorized: true },
  "verify-full": { enabled: true, rejectUnauthorized: true }
}

/** @internal */
export const assemble = (v: Variables): Either.Either<Assembled, ReadonlyArray<ConfigIssue>> => {
  const issues: Array<ConfigIssue> = []
  const report = (variable: VariableName, message: string, expected: string = variableInfo[variable].expected) =>
    issues.push({ variable, expected, message: `${variable}: ${message}` })

  if (Option.isNone(v.NODE_ENV)) {
    report("NODE_ENV", `required (${variableInfo.NODE_ENV.expected}); set it in the process environment`)
    return Either.left(issues)
  }
  const environment: Environment = v.NODE_ENV.value
  const url = v.DATABASE_URL

  const hostEntries = Option.orElse(v.DB_HOST, () => Option.map(url, (parts) => parts.hosts))
  if (Option.isNone(hostEntries)) {
    report("DB_HOST", `required (${variableInfo.DB_HOST.expected}); set DB_HOST or DATABASE_URL`)
  }
  // an entry without its own port takes DB_PORT, else the URL's first port (libpq's single-port rule), else 5432
  const defaultPort = Option.getOrElse(
    Option.orElse(v.DB_PORT, () => Option.flatMap(url, (parts) => parts.port)),
    () => Defaults.port
  )
  // DB_PORT overrides a single-host URL's port (as it always did); in a list, each entry's own port wins
  const overridesEntry = Option.isNone(v.DB_HOST) && Option.exists(hostEntries, (entries) => entries.length === 1)
  const hosts = Option.map(hostEntries, (entries) =>
    entries.map((entry) => ({
      host: entry.host,
      port: overridesEntry ? defaultPort : Option.getOrElse(entry.port, () => defaultPort)
    }))
  )
  const host = Option.flatMap(hosts, (list) => Option.fromNullable(list[0]))
  if (Option.isSome(v.DB_PORT) && Option.exists(v.DB_HOST, (entries) => entries.some((entry) => Option.isSome(entry.port)))) {
    report("DB_PORT", "DB_PORT is set and DB_HOST gives ports of its own; give each port in one place")
  }
  const user = Option.orElse(v.DB_USER, () => Option.flatMap(url, (parts) => parts.user))
  if (Option.isNone(user)) report("DB_USER", `required (${variableInfo.DB_USER.expected}); set DB_USER or DATABASE_URL`)
  // Like libpq, the database defaults to the user's name; `pg` would otherwise fall back to PGDATABASE.
  const database = Option.orElse(v.DB_NAME, () => Option.orElse(Option.flatMap(url, (parts) => parts.database), () => user))

  const urlPassword = Option.flatMap(url, (parts) => parts.password)
  let password: Option.Option<Redacted.Redacted<string>> = v.DB_PASSWORD
  let passwordVariable: Option.Option<"DB_PASSWORD" | "DATABASE_URL"> = Option.map(v.DB_PASSWORD, () => "DB_PASSWORD")
  if (Option.isSome(urlPassword)) {
    if (Option.isSome(v.DB_PASSWORD)) {
      report(
        "DB_PASSWORD",
        "DB_PASSWORD and the password in DATABASE_URL are both set; keep only one",
        "a password in only one place"
      )
    } else {
      password = urlPassword
      passwordVariable = Option.some("DATABASE_URL")
    }
  }

  // TLS: DATABASE_URL's sslmode and the DB_SSL* variables must agree; neither overrides the other.
  const sslmode = Option.flatMap(url, (parts) => parts.sslmode)
  let enabled = Option.getOrElse(v.DB_SSL, () => true)
  let rejectUnauthorized = Option.getOrElse(v.DB_SSL_REJECT_UNAUTHORIZED, () => true)
  if (Option.isSome(sslmode)) {
    const mode = sslmode.value
    const implied = sslModeTls[mode]
    const conflict = (variable: VariableName, what: string) =>
      report(
        variable,
        `${what} contradicts sslmode=${mode} in DATABASE_URL; remove one of them or make them agree`,
        `agreement with sslmode=${mode} in DATABASE_URL`
      )
    if (Option.isSome(v.DB_SSL) && v.DB_SSL.value !== implied.enabled) conflict("DB_SSL", `DB_SSL=${v.DB_SSL.value}`)
    if (implied.enabled) {
      if (Option.isSome(v.DB_SSL_REJECT_UNAUTHORIZED) && v.DB_SSL_REJECT_UNAUTHORIZED.value !== implied.rejectUnauthorized) {
        conflict("DB_SSL_REJECT_UNAUTHORIZED", `DB_SSL_REJECT_UNAUTHORIZED=${v.DB_SSL_REJECT_UNAUTHORIZED.value}`)
      }
    } else {
      const tlsOnly: ReadonlyArray<readonly [VariableName, boolean]> = [
        ["DB_SSL_REJECT_UNAUTHORIZED", Option.isSome(v.DB_SSL_REJECT_UNAUTHORIZED)],
        ["DB_SSL_CA", Option.isSome(v.DB_SSL_CA)],
        ["DB_SSL_CERT", Option.isSome(v.DB_SSL_CERT)],
        ["DB_SSL_KEY", Option.isSome(v.DB_SSL_KEY)],
        ["DB_SSL_KEY_PASSPHRASE", Option.isSome(v.DB_SSL_KEY_PASSPHRASE)],
        ["DB_SSL_MIN_VERSION", Option.isSome(v.DB_SSL_MIN_VERSION)]
      ]
      for (const [variable, set] of tlsOnly) if (set) conflict(variable, `setting ${variable} (a TLS option)`)
    }
    enabled = implied.enabled
    rejectUnauthorized = implied.rejectUnauthorized
  }
  if (Option.isSome(v.DB_SSL_CERT) !== Option.isSome(v.DB_SSL_KEY)) {
    const missing: VariableName = Option.isSome(v.DB_SSL_CERT) ? "DB_SSL_KEY" : "DB_SSL_CERT"
    report(missing, "DB_SSL_CERT and DB_SSL_KEY go together (client certificate and its key); set both or neither")
  }
  if (Option.isSome(v.DB_SSL_KEY_PASSPHRASE) && Option.isNone(v.DB_SSL_KEY)) {
    report("DB_SSL_KEY", "DB_SSL_KEY_PASSPHRASE is set but there is no DB_SSL_KEY to decrypt")
  }

  const preset = PoolSizing.preset(environment)
  const min = Option.getOrElse(v.DB_POOL_MIN, () => preset.min)
  const max = Option.getOrElse(v.DB_POOL_MAX, () => preset.max)
  if (min > max) {
    const [variable, detail]: readonly [VariableName, string] = Option.isSome(v.DB_POOL_MIN)
      ? ["DB_POOL_MIN", Option.isSome(v.DB_POOL_MAX) ? "" : ` (the ${environment} default)`]
      : ["DB_POOL_MAX", ` (DB_POOL_MIN defaults to ${preset.min} in ${environment}; set it too)`]
    report(variable, `DB_POOL_MIN=${min} is greater than DB_POOL_MAX=${max}${detail}`, "DB_POOL_MIN <= DB_POOL_MAX")
  }

  if (Option.isSome(v.DB_READ_REPLICA_PORT) && Option.isNone(v.DB_READ_REPLICA_HOST)) {
    report("DB_READ_REPLICA_HOST", "DB_READ_REPLICA_PORT is set without DB_READ_REPLICA_HOST; set both or neither")
  }

  // SECRETS_BACKEND defaults to env where the requirements allow env variables (development,
  // test); deployed environments must say where credentials come from.
  let backend: SecretsBackendKind = "env"
  if (Option.isSome(v.SECRETS_BACKEND)) backend = v.SECRETS_BACKEND.value
  else if (environment === "staging" || environment === "production") {
    report("SECRETS_BACKEND", `required in ${environment} (aws-secrets-manager, vault or rds-iam)`)
  }
  const requiredFor = (variable: VariableName, value: Option.Option<unknown>) => {
    if (Option.isNone(value)) {
      report(variable, `required when SECRETS_BACKEND=${backend} (${variableInfo[variable].expected})`)
    }
  }
  // rds-iam signs its tokens for a region: the AWS settings serve both
  const usesAws = backend === "aws-secrets-manager" || backend === "rds-iam"
  if (usesAws) requiredFor("AWS_REGION", v.AWS_REGION)
  // a token is signed for one host:port, and the replica's pool would be handed the primary's
  if (backend === "rds-iam" && Option.isSome(v.DB_READ_REPLICA_HOST)) {
    report(
      "DB_READ_REPLICA_HOST",
      "is not supported with SECRETS_BACKEND=rds-iam (an IAM token is signed for DB_HOST:DB_PORT only); unset it"
    )
  }
  const vaultAuth = backend === "vault" ? vaultAuthOf(v, report) : Option.none<VaultAuth>()
  if (backend === "vault") {
    requiredFor("VAULT_ADDR", v.VAULT_ADDR)
    requiredFor("VAULT_PATH", v.VAULT_PATH)
  }
  // In production the env backend is refused by the policy, which says more than "missing".
  // With a client certificate and key (mutual TLS) the server may authenticate by certificate
  // alone and never ask for a password; if it does ask, the env backend fails the connection
  // with its typed SecretNotFound for DB_PASSWORD.
  const clientCertificate = Option.isSome(v.DB_SSL_CERT) && Option.isSome(v.DB_SSL_KEY)
  if (backend === "env" && environment !== "production" && Option.isNone(password) && !clientCertificate) {
    report("DB_PASSWORD", "required when SECRETS_BACKEND=env (or give the password in DATABASE_URL)")
  }

  const channelBinding = Option.orElse(v.DB_CHANNEL_BINDING, () => Option.flatMap(url, (parts) => parts.channelBinding))
  // Measured with PgBouncer 1.18: it offers plain SCRAM-SHA-256 only, never -PLUS, so `require`
  // would refuse every connection; say so before the first one.
  if (Option.contains(channelBinding, "require") && Option.contains(v.DB_POOLER, "pgbouncer")) {
    report(
      "DB_CHANNEL_BINDING",
      "DB_CHANNEL_BINDING=require cannot be met with DB_POOLER=pgbouncer: PgBouncer does not offer SCRAM-SHA-256-PLUS, " +
        "so every connection would be refused. Use DB_CHANNEL_BINDING=prefer behind PgBouncer (its TLS certificate is " +
        "verified with verify-full), or connect to PostgreSQL directly",
      "prefer or disable when DB_POOLER=pgbouncer"
    )
  }

  if (
    issues.length > 0 || Option.isNone(host) || Option.isNone(user) || Option.isNone(database)
  ) {
    return Either.left(issues)
  }

  const aws = usesAws && Option.isSome(v.AWS_REGION)
    ? Option.some({
      region: v.AWS_REGION.value,
      endpoint: v.AWS_ENDPOINT_URL_SECRETS_MANAGER,
      maxAttempts: Option.getOrElse(v.AWS_MAX_ATTEMPTS, () => Defaults.awsMaxAttempts),
      caBundle: v.AWS_CA_BUNDLE
    })
    : Option.none()
  const vault = backend === "vault" && Option.isSome(v.VAULT_ADDR) && Option.isSome(vaultAuth) &&
      Option.isSome(v.VAULT_PATH)
    ? Option.some({
      address: v.VAULT_ADDR.value,
      auth: vaultAuth.value,
      path: v.VAULT_PATH.value,
      namespace: v.VAULT_NAMESPACE,
      caCert: v.VAULT_CACERT,
      redirectHosts: Option.getOrElse(v.VAULT_REDIRECT_HOSTS, () => []),
      database: Option.map(v.VAULT_DB_ROLE, (role) => ({
        role,
        mount: Option.getOrElse(v.VAULT_DB_MOUNT, () => Defaults.vaultDatabaseMount)
      }))
    })
    : Option.none()

  const statementTimeout = Option.getOrElse(v.DB_STATEMENT_TIMEOUT, () => Defaults.statementTimeout)
  const settings: DbSettings = {
    environment,
    host: host.value.host,
    port: host.value.port,
    hosts: Option.getOrElse(hosts, () => [host.value]),
    // libpq's default is `any`; with several hosts the one a pool of writers wants is the writable one
    targetSessionAttrs: Option.getOrElse(
      Option.orElse(v.DB_TARGET_SESSION_ATTRS, () => Option.flatMap(url, (parts) => parts.targetSessionAttrs)),
      () => (Option.exists(hosts, (list) => list.length > 1) ? "read-write" : "any")
    ),
    loadBalanceHosts: Option.getOrElse(
      Option.orElse(v.DB_LOAD_BALANCE_HOSTS, () => Option.flatMap(url, (parts) => parts.loadBalanceHosts)),
      () => "disable"
    ),
    database: database.value,
    user: user.value,
    password,
    applicationName: Option.getOrElse(v.DB_APPLICATION_NAME, () => Defaults.applicationName),
    tls: {
      enabled,
      rejectUnauthorized,
      ca: v.DB_SSL_CA,
      cert: v.DB_SSL_CERT,
      key: v.DB_SSL_KEY,
      keyPassphrase: v.DB_SSL_KEY_PASSPHRASE,
      crl: v.DB_SSL_CRL,
      minVersion: Option.getOrElse(v.DB_SSL_MIN_VERSION, () => Defaults.tlsMinVersion)
    },
    pool: { min, max },
    connectTimeout: Option.getOrElse(v.DB_CONNECTION_TIMEOUT, () => Defaults.connectTimeout),
    idleTimeout: Option.getOrElse(v.DB_IDLE_TIMEOUT, () => Defaults.idleTimeout),
    auth: {
      channelBinding: Option.getOrElse(channelBinding, () => Defaults.channelBinding),
      requireAuth: Option.getOrElse(
        Option.orElse(v.DB_REQUIRE_AUTH, () => Option.flatMap(url, (parts) => parts.requireAuth)),
        () => Defaults.requireAuth(environment, backend)
      )
    },
    statementTimeout,
    idleInTransactionTimeout: Option.getOrElse(
      v.DB_IDLE_IN_TRANSACTION_TIMEOUT,
      () => Defaults.idleInTransactionTimeout
    ),
    queryTimeout: Option.getOrElse(v.DB_QUERY_TIMEOUT, () => Defaults.queryTimeout(statementTimeout)),
    maxLifetime: Option.getOrElse(v.DB_MAX_LIFETIME, () => Defaults.maxLifetime),
    pooler: Option.getOrElse(v.DB_POOLER, () => Defaults.pooler),
    readReplica: Option.map(v.DB_READ_REPLICA_HOST, (replicaHost) => ({
      host: replicaHost,
      port: Option.getOrElse(v.DB_READ_REPLICA_PORT, () => defaultPort)
    })),
    failoverTimeout: Option.getOrElse(v.DB_FAILOVER_TIMEOUT, () => Defaults.failoverTimeout),
    secrets: {
      backend,
      cacheTtl: Option.getOrElse(v.SECRETS_CACHE_TTL, () => Defaults.secretsCacheTtl),
      maxStale: Option.getOrElse(v.SECRETS_MAX_STALE, () => Defaults.secretsMaxStale),
      requestTimeout: Option.getOrElse(v.SECRETS_REQUEST_TIMEOUT, () => Defaults.secretsRequestTimeout),
      prefix: Option.getOrElse(v.SECRETS_PREFIX, () => Defaults.secretsPrefix(environment)),
      aws,
      vault
    },
    alerts: {
      failedAuthThreshold: Option.getOrElse(
        v.DB_ALERT_FAILED_AUTH_THRESHOLD,
        () => Defaults.alerts.failedAuthThreshold
      ),
      failedAuthWindow: Option.getOrElse(v.DB_ALERT_FAILED_AUTH_WINDOW, () => Defaults.alerts.failedAuthWindow),
      poolUsageRatio: Option.getOrElse(v.DB_ALERT_POOL_USAGE, () => Defaults.alerts.poolUsageRatio),
      slowQuery: Option.getOrElse(v.DB_ALERT_SLOW_QUERY, () => Defaults.alerts.slowQuery),
      certificateExpiry: Option.getOrElse(v.DB_ALERT_CERT_EXPIRY_DAYS, () => Defaults.alerts.certificateExpiry),
      credentialMaxAge: Option.getOrElse(v.DB_CREDENTIAL_MAX_AGE, () => Defaults.alerts.credentialMaxAge)
    }
  }
  return Either.right({ settings, passwordVariable })
}
