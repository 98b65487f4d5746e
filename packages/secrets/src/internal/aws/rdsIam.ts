/**
 * RDS IAM database authentication (`SECRETS_BACKEND=rds-iam`): the password of each new
 * connection is an authentication token from `@aws-sdk/rds-signer`, a SigV4-presigned
 * `rds-db:connect` request for `<host>:<port>` and the database user, valid for 15 minutes and
 * checked by RDS when a connection is opened (a connection open past it stays open). Signing is
 * local; only the credentials (the SDK's default chain: environment, shared config, container or
 * instance role, EKS IRSA / Pod Identity) may need the network.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type SecretError, SecretNotFound, SecretsBackendUnavailable } from "../../SecretError.js"
import * as OptionalClient from "../optionalClient.js"

/** @internal */
export interface RdsIamOptions {
  readonly region: string
  /** the host and port the token is signed for: `DB_HOST`, `DB_PORT` */
  readonly hostname: string
  readonly port: number
  /** `DB_USER`: the role with the `rds_iam` grant */
  readonly username: string
  readonly requestTimeout: Duration.DurationInput
}

const backend = "rds-iam" as const

/** The only key this backend serves. */
export const passwordKey = "DB_PASSWORD"

/** How long RDS accepts a token (`X-Amz-Expires=900`, set by the signer). */
export const tokenLifetime: Duration.Duration = Duration.minutes(15)

/**
 * How long a token is served from the cache: at most 10 minutes whatever `SECRETS_CACHE_TTL`
 * says, so a token handed to a new connection has at least 5 minutes left (clock skew, a slow
 * connection). Served stale (credentials unavailable) at most until 1 minute before it expires.
 */
export const tokenTtl = (cacheTtl: Duration.Duration): Duration.Duration => Duration.min(cacheTtl, Duration.minutes(10))

/** @internal */
export const tokenMaxStale = (cacheTtl: Duration.Duration): Duration.Duration =>
  Duration.subtract(Duration.subtract(tokenLifetime, Duration.minutes(1)), tokenTtl(cacheTtl))

const errorName = (error: unknown): string =>
  typeof error === "object" && error !== null && "name" in error && typeof error.name === "string"
    ? error.name
    : "UnknownError"

/** A token cannot be made: no credentials (yet), or whatever else the signer rejected with (its name only). */
const unavailable = (options: RdsIamOptions, reason: string) =>
  new SecretsBackendUnavailable({
    backend,
    key: passwordKey,
    message: `Could not sign an RDS IAM authentication token for ${options.username}@${options.hostname}:${options.port} ` +
      `(${reason}). Fix: run with an IAM role (instance profile, ECS task role, EKS IRSA / Pod Identity) or set ` +
      "AWS_PROFILE, allowed rds-db:connect on arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/" +
      `${options.username}; on a new instance the role may not be reachable yet, so this is retried.`
  })

/**
 * The token source: `lookup("DB_PASSWORD")` signs a token; any other key is `SecretNotFound`
 * (the user, host and database come from the configuration). Uncached here: `SecretsBackend`
 * puts it behind a `SecretCache` with `tokenTtl`.
 *
 * @internal
 */
export const make = (
  options: RdsIamOptions
): Effect.Effect<(key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>, SecretsBackendUnavailable> =>
  Effect.map(
    OptionalClient.load({
      backend,
      packageName: "@aws-sdk/rds-signer",
      version: "^3.1164",
      importer: () => import("@aws-sdk/rds-signer")
    }),
    ({ Signer }) => {
      const signer = new Signer({
        region: options.region,
        hostname: options.hostname,
        port: options.port,
        username: options.username
      })
      const timeoutMs = Duration.toMillis(Duration.decode(options.requestTimeout))
      const sign = Effect.tryPromise({
        try: () => signer.getAuthToken(),
        catch: (error) => unavailable(options, errorName(error))
      }).pipe(
        Effect.timeoutFail({
          duration: options.requestTimeout,
          onTimeout: () => unavailable(options, `no credentials within ${timeoutMs} ms`)
        }),
        Effect.map(Redacted.make),
        Effect.withSpan("SecretsBackend.rdsIam.get", {
          attributes: { host: options.hostname, port: options.port, user: options.username }
        })
      )
      return (key: string) =>
        key === passwordKey ? sign : Effect.fail(
          new SecretNotFound({
            backend,
            key,
            message: `SECRETS_BACKEND=rds-iam serves only ${passwordKey} (an IAM authentication token), not ${key}. ` +
              "Fix: take the user, host and database from DB_USER, DB_HOST and DB_NAME."
          })
        )
    }
  )
