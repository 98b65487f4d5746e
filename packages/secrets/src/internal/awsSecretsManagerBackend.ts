import type { GetSecretValueCommandOutput } from "@aws-sdk/client-secrets-manager"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import {
  SecretAccessDenied,
  type SecretError,
  SecretMalformed,
  SecretNotFound,
  SecretsBackendUnavailable
} from "../SecretError.js"
import * as OptionalClient from "./optionalClient.js"

/** @internal */
export interface AwsBackendOptions {
  readonly region: string
  readonly endpoint: Option.Option<string>
  readonly maxAttempts: number
  readonly prefix: string
  readonly requestTimeout: Duration.DurationInput
}

const backend = "aws-secrets-manager" as const

/** RDS-managed secrets store `{ username, password, host, port, ... }`. */
const rdsField: Readonly<Record<string, string>> = {
  DB_PASSWORD: "password",
  DB_USER: "username",
  DB_HOST: "host",
  DB_PORT: "port"
}

const errorName = (error: unknown): string =>
  typeof error === "object" && error !== null && "name" in error && typeof error.name === "string"
    ? error.name
    : "UnknownError"

const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

/**
 * Maps what the SDK rejected with to our errors, from `err.name` (and a Node `code` for
 * transport failures) only: SDK messages are never copied, so nothing the service or the
 * transport said can carry a secret into our errors.
 */
const classify = (key: string, secretId: string, where: string, timeoutMs: number) => (error: unknown): SecretError => {
  const name = errorName(error)
  switch (name) {
    case "ResourceNotFoundException":
    case "InvalidRequestException":
    case "InvalidParameterException":
      return new SecretNotFound({
        backend,
        key,
        message:
          `AWS Secrets Manager (${where}) has no readable secret "${secretId}" for ${key} (${name}). ` +
          `Fix: create it (aws secretsmanager create-secret --name ${secretId} --secret-string ...), ` +
          "restore it if it is scheduled for deletion, or correct SECRETS_PREFIX / AWS_REGION."
      })
    case "AccessDeniedException":
    case "UnrecognizedClientException":
    case "InvalidSignatureException":
    case "ExpiredTokenException":
    case "ExpiredToken":
      return new SecretAccessDenied({
        backend,
        key,
        message:
          `AWS Secrets Manager (${where}) refused to return secret "${secretId}" for ${key} (${name}). ` +
          `Fix: check the IAM role has secretsmanager:GetSecretValue on arn:aws:secretsmanager:<region>:<account>:secret:${secretId}* ` +
          "and that its credentials are current (aws sts get-caller-identity)."
      })
    case "DecryptionFailure":
      // A KMS refusal is a permission problem, and like one it must not serve a stale value.
      return new SecretAccessDenied({
        backend,
        key,
        message:
          `AWS Secrets Manager (${where}) could not decrypt secret "${secretId}" for ${key} (DecryptionFailure). ` +
          "Fix: grant the IAM role kms:Decrypt on the KMS key that encrypts the secret."
      })
    case "CredentialsProviderError":
      return new SecretsBackendUnavailable({
        backend,
        key,
        message:
          `No AWS credentials could be loaded to read secret "${secretId}" for ${key} (CredentialsProviderError). ` +
          "Fix: run with an IAM role (instance profile, ECS task role, EKS IRSA / Pod Identity) or set AWS_PROFILE; " +
          "on a new instance the role may not be reachable yet, so this is retried."
      })
    default: {
      const code = errorCode(error)
      const reason = name === "TimeoutError" || name === "AbortError"
        ? `no answer within ${timeoutMs} ms`
        : code !== undefined
        ? `${name} ${code}`
        : name
      return new SecretsBackendUnavailable({
        backend,
        key,
        message:
          `AWS Secrets Manager (${where}) did not answer for secret "${secretId}" (${key}): ${reason}. ` +
          "This is usually transient and is retried on the next read. If it persists check network access to " +
          `the endpoint, AWS service health, and SECRETS_REQUEST_TIMEOUT (now ${timeoutMs} ms).`
      })
    }
  }
}

const malformed = (key: string, secretId: string, problem: string) =>
  new SecretMalformed({
    backend,
    key,
    message:
      `AWS Secrets Manager secret "${secretId}" for ${key} ${problem}. ` +
      `Fix: store a non-empty UTF-8 string, or a JSON object with a "${key}"${
        rdsField[key] === undefined ? "" : ` or "${rdsField[key]}"`
      } field.`
  })

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const parseObject = (text: string): Readonly<Record<string, unknown>> | undefined => {
  try {
    const parsed: unknown = JSON.parse(text)
    return isRecord(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

/**
 * A plain string is the value; a JSON object yields field `KEY`, or its RDS-style name
 * (`password`, `username`, `host`, `port`). A missing field is `SecretNotFound` (the secret
 * exists, the key does not), anything else unusable is `SecretMalformed`.
 */
const extractFromText = (
  key: string,
  secretId: string,
  text: string
): Effect.Effect<Redacted.Redacted<string>, SecretError> => {
  const object = parseObject(text)
  if (object === undefined) {
    return text.length === 0 ? Effect.fail(malformed(key, secretId, "is an empty string")) : Effect.succeed(Redacted.make(text))
  }
  const alias = rdsField[key]
  const field = key in object ? key : alias !== undefined && alias in object ? alias : undefined
  if (field === undefined) {
    return Effect.fail(
      new SecretNotFound({
        backend,
        key,
        message:
          `AWS Secrets Manager secret "${secretId}" is a JSON object without a "${key}"${
            alias === undefined ? "" : ` or "${alias}"`
          } field. Fix: add the field to the secret, or store ${key} as a plain string secret.`
      })
    )
  }
  const value = object[field]
  if (typeof value === "string" && value.length > 0) return Effect.succeed(Redacted.make(value))
  if (typeof value === "number" && Number.isFinite(value)) return Effect.succeed(Redacted.make(String(value)))
  return Effect.fail(malformed(key, secretId, `has a JSON field "${field}" that is not a non-empty string or number`))
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const extract = (key: string, secretId: string, output: GetSecretValueCommandOutput) => {
  if (output.SecretString !== undefined) return extractFromText(key, secretId, output.SecretString)
  if (output.SecretBinary !== undefined) {
    if (output.SecretBinary.length === 0) return Effect.fail(malformed(key, secretId, "has an empty SecretBinary"))
    let text: string
    try {
      text = utf8.decode(output.SecretBinary)
    } catch {
      return Effect.fail(malformed(key, secretId, "has a SecretBinary that is not valid UTF-8"))
    }
    return extractFromText(key, secretId, text)
  }
  return Effect.fail(malformed(key, secretId, "has neither a SecretString nor a SecretBinary"))
}

/**
 * The uncached AWS Secrets Manager read: `GetSecretValue` of `<prefix><KEY>` (AWSCURRENT).
 *
 * The SDK has no default timeout, so every read is bounded twice: each attempt by the HTTP
 * handler (`requestTimeout` with `throwOnRequestTimeout`, else it only warns) and the whole
 * read, retries and their backoff included, by an Effect timeout that aborts the request.
 * Credentials come from the SDK's default chain (environment, shared config, SSO, container /
 * instance role); region, endpoint and `maxAttempts` come from settings only
 * (`ignoreConfiguredEndpointUrls`: no `AWS_ENDPOINT_URL*` behind the configuration's back).
 * The SDK client is an optional peer dependency, imported here when the backend is built.
 *
 * @internal
 */
export const make = (
  options: AwsBackendOptions
): Effect.Effect<
  (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>,
  SecretsBackendUnavailable,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const { GetSecretValueCommand, SecretsManagerClient } = yield* OptionalClient.load({
      backend,
      packageName: "@aws-sdk/client-secrets-manager",
      version: "^3.1164",
      importer: () => import("@aws-sdk/client-secrets-manager")
    })
    const timeoutMs = Duration.toMillis(Duration.decode(options.requestTimeout))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new SecretsManagerClient({
          region: options.region,
          ...Option.match(options.endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) }),
          ignoreConfiguredEndpointUrls: true,
          maxAttempts: options.maxAttempts,
          requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs, throwOnRequestTimeout: true }
        })
      ),
      (client) => Effect.sync(() => client.destroy())
    )
    const where = Option.getOrElse(options.endpoint, () => `region ${options.region}`)
    return (key: string) => {
      const secretId = `${options.prefix}${key}`
      return Effect.tryPromise({
        try: (signal) => client.send(new GetSecretValueCommand({ SecretId: secretId }), { abortSignal: signal }),
        catch: classify(key, secretId, where, timeoutMs)
      }).pipe(
        Effect.timeoutFail({
          duration: options.requestTimeout,
          onTimeout: () => classify(key, secretId, where, timeoutMs)({ name: "TimeoutError" })
        }),
        Effect.flatMap((output) => extract(key, secretId, output)),
        Effect.withSpan("SecretsBackend.awsSecretsManager.get", { attributes: { key, secretId } })
      )
    }
  })
