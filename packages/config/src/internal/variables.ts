/**
 * The catalogue of environment variables: one schema each, plus what a person is told when a
 * value does not fit.
 *
 * @internal
 */
import * as Schema from "effect/Schema"
import { DatabaseUrl } from "./databaseUrl.js"
import * as F from "./fields.js"

const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { as: "Option" })

/**
 * The raw record (variable name -> string, or `Redacted` for secret variables) decoded into one
 * `Option` per variable. Cross-variable rules live in `assemble.ts`.
 *
 * @internal
 */
export const Variables = Schema.Struct({
  NODE_ENV: opt(F.Environment),
  DATABASE_URL: opt(DatabaseUrl),
  DB_HOST: opt(F.HostPortList),
  DB_PORT: opt(F.Port),
  DB_TARGET_SESSION_ATTRS: opt(F.TargetSessionAttrs),
  DB_LOAD_BALANCE_HOSTS: opt(F.LoadBalanceHosts),
  DB_NAME: opt(Schema.String.pipe(Schema.pattern(/^\S{1,63}$/))),
  DB_USER: opt(Schema.String.pipe(Schema.pattern(/^\S{1,63}$/))),
  DB_PASSWORD: opt(F.Secret),
  DB_APPLICATION_NAME: opt(F.ApplicationName),
  DB_SSL: opt(F.BooleanFromEnv),
  DB_SSL_REJECT_UNAUTHORIZED: opt(F.BooleanFromEnv),
  DB_SSL_CA: opt(F.PemFromString("certificates")),
  DB_SSL_CERT: opt(F.PemFromString("certificate")),
  DB_SSL_KEY: opt(F.PemFromRedacted),
  DB_SSL_KEY_PASSPHRASE: opt(F.Secret),
  DB_SSL_CRL: opt(F.PemFromString("crl")),
  DB_SSL_MIN_VERSION: opt(F.TlsVersion),
  DB_CHANNEL_BINDING: opt(F.ChannelBinding),
  DB_REQUIRE_AUTH: opt(F.RequireAuth),
  DB_POOL_MIN: opt(F.intBetween(0, 10_000)),
  DB_POOL_MAX: opt(F.intBetween(1, 10_000)),
  DB_CONNECTION_TIMEOUT: opt(F.Millis),
  DB_IDLE_TIMEOUT: opt(F.Millis),
  DB_STATEMENT_TIMEOUT: opt(F.MillisOrNone),
  DB_IDLE_IN_TRANSACTION_TIMEOUT: opt(F.MillisOrNone),
  DB_QUERY_TIMEOUT: opt(F.MillisOrNone),
  DB_MAX_LIFETIME: opt(F.MillisOrNone),
  DB_POOLER: opt(F.Pooler),
  DB_READ_REPLICA_HOST: opt(F.Host),
  DB_READ_REPLICA_PORT: opt(F.Port),
  DB_FAILOVER_TIMEOUT: opt(F.Millis),
  SECRETS_BACKEND: opt(F.SecretsBackendKind),
  SECRETS_CACHE_TTL: opt(F.Millis),
  SECRETS_MAX_STALE: opt(F.Millis),
  SECRETS_REQUEST_TIMEOUT: opt(F.Millis),
  SECRETS_PREFIX: opt(F.NonBlank),
  AWS_REGION: opt(F.AwsRegion),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: opt(F.HttpUrl),
  AWS_MAX_ATTEMPTS: opt(F.intBetween(1, 10)),
  AWS_CA_BUNDLE: opt(F.PemFromString("certificates")),
  VAULT_ADDR: opt(F.HttpUrl),
  VAULT_TOKEN: opt(F.SecretToken),
  VAULT_PATH: opt(F.PathLike),
  VAULT_NAMESPACE: opt(F.NonBlank),
  VAULT_CACERT: opt(F.PemFromString("certificates")),
  VAULT_REDIRECT_HOSTS: opt(F.HostList),
  VAULT_DB_ROLE: opt(F.PathLike),
  VAULT_DB_MOUNT: opt(F.PathLike),
  VAULT_AUTH_METHOD: opt(F.VaultAuthMethod),
  VAULT_AUTH_MOUNT: opt(F.PathLike),
  VAULT_ROLE_ID: opt(F.NonBlank),
  VAULT_SECRET_ID: opt(F.SecretToken),
  VAULT_SECRET_ID_FILE: opt(F.NonBlank),
  VAULT_ROLE: opt(F.NonBlank),
  VAULT_JWT_FILE: opt(F.NonBlank),
  DB_ALERT_FAILED_AUTH_THRESHOLD: opt(F.intBetween(1, 1_000_000)),
  DB_ALERT_FAILED_AUTH_WINDOW: opt(F.Millis),
  DB_ALERT_POOL_USAGE: opt(F.Ratio),
  DB_ALERT_SLOW_QUERY: opt(F.Millis),
  DB_ALERT_CERT_EXPIRY_DAYS: opt(F.Days),
  DB_CREDENTIAL_MAX_AGE: opt(F.Days)
})

/** @internal */
export type Variables = typeof Variables.Type

/** @internal */
export type VariableName = keyof typeof Variables.fields

/** @internal */
export interface VariableInfo {
  /** the form the value must take, for people */
  readonly expected: string
  /** read `Redacted`; its value never appears in any message */
  readonly secret: boolean
  /** the schema writes its own reason (certificate files, URLs), which may be shown */
  readonly explains: boolean
}

const millis = "a whole number of milliseconds from 1 to 2147483647"
const millisOrNone = "a whole number of milliseconds from 0 (no limit) to 2147483647"
const pem = "a readable PEM file path or inline PEM (-----BEGIN ...)"
const info = (expected: string, options: { secret?: boolean; explains?: boolean } = {}): VariableInfo => ({
  expected,
  secret: options.secret ?? false,
  explains: options.explains ?? false
})

/** @internal */
export const variableInfo: { readonly [K in VariableName]: VariableInfo } = {
  NODE_ENV: info("one of development, test, staging, production"),
  DATABASE_URL: info("postgres://user@host:port/database[?sslmode=verify-full]", { secret: true, explains: true }),
  DB_HOST: info("a host name or IP address, or a comma-separated list of host[:port] such as db-a:5432,db-b:5433"),
  DB_PORT: info("an integer port from 1 to 65535"),
  DB_TARGET_SESSION_ATTRS: info("one of any, read-write, primary, standby, prefer-standby"),
  DB_LOAD_BALANCE_HOSTS: info("one of disable, random"),
  DB_NAME: info("a database name (1 to 63 characters, no spaces)"),
  DB_USER: info("a user name (1 to 63 characters, no spaces)"),
  DB_PASSWORD: info("a non-empty password", { secret: true }),
  DB_APPLICATION_NAME: info("1 to 63 printable ASCII characters"),
  DB_SSL: info("true, false, 1 or 0"),
  DB_SSL_REJECT_UNAUTHORIZED: info("true, false, 1 or 0"),
  DB_SSL_CA: info(pem, { explains: true }),
  DB_SSL_CERT: info(pem, { explains: true }),
  DB_SSL_KEY: info(pem, { secret: true, explains: true }),
  DB_SSL_KEY_PASSPHRASE: info("a non-empty passphrase", { secret: true }),
  DB_SSL_CRL: info("a readable PEM file path or inline PEM (-----BEGIN X509 CRL-----)", { explains: true }),
  DB_CHANNEL_BINDING: info("one of disable, prefer, require"),
  DB_REQUIRE_AUTH: info("a comma-separated list of scram-sha-256, md5, password, none", { explains: true }),
  DB_SSL_MIN_VERSION: info("one of TLSv1.2, TLSv1.3 (TLSv1, TLSv1.1 outside production)"),
  DB_POOL_MIN: info("an integer from 0 to 10000"),
  DB_POOL_MAX: info("an integer from 1 to 10000"),
  DB_CONNECTION_TIMEOUT: info(millis),
  DB_IDLE_TIMEOUT: info(millis),
  DB_STATEMENT_TIMEOUT: info(millisOrNone),
  DB_IDLE_IN_TRANSACTION_TIMEOUT: info(millisOrNone),
  DB_QUERY_TIMEOUT: info(millisOrNone),
  DB_MAX_LIFETIME: info(millisOrNone),
  DB_POOLER: info("one of none, pgbouncer"),
  DB_READ_REPLICA_HOST: info("a host name or IP address"),
  DB_READ_REPLICA_PORT: info("an integer port from 1 to 65535"),
  DB_FAILOVER_TIMEOUT: info(millis),
  SECRETS_BACKEND: info("one of aws-secrets-manager, vault, env, rds-iam"),
  SECRETS_CACHE_TTL: info(millis),
  SECRETS_MAX_STALE: info(millis),
  SECRETS_REQUEST_TIMEOUT: info(millis),
  SECRETS_PREFIX: info("a secret name prefix without spaces, e.g. takumi/production/"),
  AWS_REGION: info("an AWS region such as us-east-1"),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: info("an http(s):// URL"),
  AWS_MAX_ATTEMPTS: info("an integer from 1 to 10"),
  AWS_CA_BUNDLE: info(pem, { explains: true }),
  VAULT_ADDR: info("an http(s):// URL such as https://vault.example.com:8200"),
  VAULT_TOKEN: info("a non-empty token without spaces", { secret: true }),
  VAULT_PATH: info("a KV v2 path such as secret/takumi/production (no leading slash, no spaces)"),
  VAULT_NAMESPACE: info("a Vault namespace without spaces"),
  VAULT_CACERT: info(pem, { explains: true }),
  VAULT_REDIRECT_HOSTS: info("a comma-separated list of host names, e.g. vault-2.internal,vault-3.internal"),
  VAULT_DB_ROLE: info("a database secrets engine role name such as takumi-app (no spaces)"),
  VAULT_DB_MOUNT: info("the database secrets engine mount such as database (no leading slash, no spaces)"),
  VAULT_AUTH_METHOD: info("one of token, approle, kubernetes, jwt"),
  VAULT_AUTH_MOUNT: info("the auth method's mount path, e.g. approle or k8s/prod (no leading slash, no spaces)"),
  VAULT_ROLE_ID: info("an AppRole role_id without spaces"),
  VAULT_SECRET_ID: info("an AppRole secret_id without spaces", { secret: true }),
  VAULT_SECRET_ID_FILE: info("the path of a file holding the AppRole secret_id"),
  VAULT_ROLE: info("the Vault role to log in as (kubernetes, jwt)"),
  VAULT_JWT_FILE: info("the path of a file holding the JWT (kubernetes: the service-account token)"),
  DB_ALERT_FAILED_AUTH_THRESHOLD: info("an integer from 1 to 1000000"),
  DB_ALERT_FAILED_AUTH_WINDOW: info(millis),
  DB_ALERT_POOL_USAGE: info("a fraction greater than 0 and at most 1, e.g. 0.9"),
  DB_ALERT_SLOW_QUERY: info(millis),
  DB_ALERT_CERT_EXPIRY_DAYS: info("a whole number of days from 1 to 3650"),
  DB_CREDENTIAL_MAX_AGE: info("a whole number of days from 1 to 3650 (90 at most in production)")
}

/** @internal */
export const variableNames: ReadonlyArray<VariableName> = Object.keys(variableInfo).filter(
  (name): name is VariableName => name in variableInfo
)
