import type { GetSecretValueCommandOutput, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "node:stream"
import {
  SecretAccessDenied,
  type SecretError,
  SecretMalformed,
  SecretNotFound,
  SecretsBackendUnavailable
} from "../../SecretError.js"
import * as AwsSecretMetadata from "./metadata.js"
import * as AwsRotation from "./rotation.js"
import * as OptionalClient from "../optionalClient.js"
import * as SecretLimits from "../secretLimits.js"
import * as TlsAgent from "../tlsAgent.js"

/** @internal */
export interface AwsBackendOptions {
  readonly region: string
  readonly endpoint: Option.Option<string>
  readonly maxAttempts: number
  readonly prefix: string
  /** PEM text of the CA bundle for a private endpoint (`AWS_CA_BUNDLE`); else Node's public CA store. */
  readonly ca: string | undefined
  readonly requestTimeout: Duration.DurationInput
}

const backend = "aws-secrets-manager" as const

/**
 * RDS-managed secrets store `{ username, password, host, port, ... }`; of these only `password`
 * is read, as `DB_PASSWORD`. @takumi/db asks the backend for the password alone and connects as
 * `DB_USER` from the configuration, so `username`, `host` and `port` are not aliases: serving
 * them would suggest they take effect.
 */
const rdsField: Readonly<Record<string, string>> = {
  DB_PASSWORD: "password"
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
  // Unavailable, not malformed: nothing of the secret was read, only that whatever answered did
  // not answer like Secrets Manager (a wrong endpoint, a proxy's page, a broken or hostile
  // server). Like a 5xx that is a problem on the way to the backend, so the cache may serve the
  // last value it read and verified for up to SECRETS_MAX_STALE, rather than letting whoever can
  // inflate one answer take the service down at once.
  if (error instanceof SecretLimits.ResponseTooLarge) {
    return new SecretsBackendUnavailable({
      backend,
      key,
      message: `AWS Secrets Manager (${where}) answered GetSecretValue for secret "${secretId}" (${key}) with ` +
        `${SecretLimits.describe(error)}. Fix: check that AWS_ENDPOINT_URL_SECRETS_MANAGER (or the region's endpoint) ` +
        "reaches Secrets Manager or its VPC endpoint, not a proxy or another service; a real answer is never this " +
        "large (a secret holds at most 64 KiB)."
    })
  }
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
      if (code !== undefined && TlsAgent.verificationFailureCodes.has(code)) {
        return new SecretsBackendUnavailable({
          backend,
          key,
          message: `TLS verification of the AWS Secrets Manager endpoint (${where}) failed (${code}) while reading ` +
            `secret "${secretId}" (${key}). Fix: for a private endpoint set AWS_CA_BUNDLE to the CA bundle that signed ` +
            "its certificate and make AWS_ENDPOINT_URL_SECRETS_MANAGER use a name in that certificate. Verification " +
            "is always on; NODE_TLS_REJECT_UNAUTHORIZED is ignored."
        })
      }
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

const fieldsFix = (key: string) =>
  `a JSON object with a "${key}"${rdsField[key] === undefined ? "" : ` or "${rdsField[key]}"`} field`

const malformed = (
  key: string,
  secretId: string,
  problem: string,
  fix = `store a non-empty UTF-8 string, or ${fieldsFix(key)}`
) =>
  new SecretMalformed({
    backend,
    key,
    message: `AWS Secrets Manager secret "${secretId}" for ${key} ${problem}. Fix: ${fix}.`
  })

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** What a secret's text is: a plain value, a JSON object, or JSON that cannot be used. */
type SecretText =
  | { readonly _tag: "Plain" }
  | { readonly _tag: "Object"; readonly fields: Readonly<Record<string, unknown>> }
  | { readonly _tag: "Unusable"; readonly problem: string }

/**
 * Text that starts like JSON (`{` or `[` after leading whitespace) is JSON or it is malformed:
 * a broken or truncated JSON secret used verbatim would become the password, and the refusal
 * would look like a wrong password instead of a broken secret. Anything else is a plain value.
 */
const parseSecretText = (text: string): SecretText => {
  const first = text.trimStart().charAt(0)
  if (first !== "{" && first !== "[") return { _tag: "Plain" }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return { _tag: "Unusable", problem: "starts like JSON ({ or [) but is not valid JSON" }
  }
  return isRecord(parsed)
    ? { _tag: "Object", fields: parsed }
    : { _tag: "Unusable", problem: "is a JSON array, not a JSON object" }
}

/**
 * A field's value as text: a non-empty string, or a JSON number that is a safe integer (`5432`
 * -> "5432"). Any other number is refused: `JSON.parse` has already rounded it
 * (`12345678901234567890` arrives as `12345678901234567000`) or it has a fraction whose digits
 * need not survive (`1.10` -> "1.1"), and the reviver that could see the source text
 * (`context.source`) exists only from Node 21.
 */
const fieldText = (value: unknown): { readonly text: string } | { readonly problem: string } => {
  if (typeof value === "string") return value.length > 0 ? { text: value } : { problem: "that is an empty string" }
  if (typeof value === "number") {
    return Number.isSafeInteger(value)
      ? { text: String(value) }
      : { problem: "holding a JSON number that is not a whole number within ±(2^53 - 1), so it cannot be read exactly" }
  }
  return { problem: "that is not a non-empty string or number" }
}

/**
 * A plain string is the value; a JSON object yields field `KEY`, or for `DB_PASSWORD` the RDS
 * field `password`. A missing field is `SecretNotFound` (the secret exists, the key does not),
 * anything else unusable is `SecretMalformed`. Messages name the secret and the field, never
 * the value.
 */
const extractFromText = (
  key: string,
  secretId: string,
  text: string
): Effect.Effect<Redacted.Redacted<string>, SecretError> => {
  const parsed = parseSecretText(text)
  if (parsed._tag === "Plain") {
    return text.length === 0 ? Effect.fail(malformed(key, secretId, "is an empty string")) : Effect.succeed(Redacted.make(text))
  }
  if (parsed._tag === "Unusable") {
    return Effect.fail(
      malformed(
        key,
        secretId,
        parsed.problem,
        `store valid JSON (${fieldsFix(key)}); a plain value that itself begins with { or [ must be stored ` +
          `inside a JSON object too, e.g. {"${key}": "..."}`
      )
    )
  }
  const has = (field: string) => Object.prototype.hasOwnProperty.call(parsed.fields, field)
  const alias = rdsField[key]
  const field = has(key) ? key : alias !== undefined && has(alias) ? alias : undefined
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
  const value = fieldText(parsed.fields[field])
  if ("text" in value) return Effect.succeed(Redacted.make(value.text))
  return Effect.fail(
    malformed(
      key,
      secretId,
      `has a JSON field "${field}" ${value.problem}`,
      `store the field as a non-empty JSON string, e.g. {"${field}": "..."}`
    )
  )
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
 * A secret value is at most `maxSecretValueBytes` (Secrets Manager's own limit on a secret), as
 * stored: the whole `SecretString` or `SecretBinary`, so a JSON field is bounded by it too.
 * Checked on the raw output, before any of it is parsed or wrapped in `Redacted`.
 */
const checkValueSize = (key: string, secretId: string) =>
(output: GetSecretValueCommandOutput): Effect.Effect<GetSecretValueCommandOutput, SecretMalformed> => {
  const bytes = output.SecretString !== undefined
    ? Buffer.byteLength(output.SecretString, "utf8")
    : output.SecretBinary?.length ?? 0
  return bytes <= SecretLimits.maxSecretValueBytes
    ? Effect.succeed(output)
    : Effect.fail(SecretLimits.valueTooLarge({
      backend,
      key,
      what: `AWS Secrets Manager secret "${secretId}" for ${key}`,
      fix: `store only the credential (aws secretsmanager put-secret-value --secret-id ${secretId} --secret-string ...).`
    }))
}

/** The SDK's HTTP response, narrowed from the `unknown` a middleware sees: its headers and body are what we touch. */
const isHttpResponse = (
  response: unknown
): response is { readonly headers: Readonly<Record<string, string | undefined>>; body: unknown } =>
  typeof response === "object" && response !== null && "headers" in response && "body" in response &&
  typeof response.headers === "object" && response.headers !== null

/**
 * Bounds every response body the SDK reads, answers and error answers alike, to
 * `maxResponseBytes`: a larger Content-Length fails at once, any other body is read through a
 * counting stream that fails past the limit. Either way the response (and its socket) is
 * destroyed, so the rest is never read, and the request fails with `ResponseTooLarge`, which
 * the SDK's retry strategy does not retry (it is neither throttling nor transient).
 *
 * It is a middleware at the deserialize step with low priority, i.e. between the deserializer
 * and the HTTP handler, so it sees each attempt's raw response before a byte of it is parsed.
 * The SDK builds its NodeHttpHandler from our options (`requestHandler` below); importing
 * `@smithy/node-http-handler` ourselves would add a dependency that is not declared (a strict
 * installer would not resolve it) and could be a second copy of another version.
 */
const boundResponseBodies = (client: SecretsManagerClient): void =>
  client.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args)
      const response = result.response
      if (!isHttpResponse(response) || !(response.body instanceof Stream.Readable)) return result
      const declaredBytes = SecretLimits.declaredAboveLimit(response.headers["content-length"])
      if (declaredBytes !== undefined) {
        response.body.destroy()
        return Promise.reject(new SecretLimits.ResponseTooLarge({ declaredBytes }))
      }
      response.body = SecretLimits.bounded(response.body)
      return result
    },
    { step: "deserialize", priority: "low", name: "takumiBoundedResponseBody" }
  )

/**
 * The uncached AWS Secrets Manager read: `GetSecretValue` of `<prefix><KEY>` (AWSCURRENT), later
 * confirmed by `DescribeSecret` and fetched again only for a new version, and AWSPENDING on
 * request (see `./rotation.ts`).
 *
 * The SDK has no default timeout, so every read is bounded twice: each attempt by the HTTP
 * handler (`requestTimeout` with `throwOnRequestTimeout`, else it only warns) and the whole
 * read, retries and their backoff included, by an Effect timeout that aborts the request.
 * Credentials come from the SDK's default chain (environment, shared config, SSO, container /
 * instance role); region, endpoint and `maxAttempts` come from settings only
 * (`ignoreConfiguredEndpointUrls`: no `AWS_ENDPOINT_URL*` behind the configuration's back).
 * TLS is verified by our own HTTPS agent whatever the environment says (see `TlsAgent`), with
 * `AWS_CA_BUNDLE` as the trust store when given; every response body is bounded
 * (`boundResponseBodies`) and every secret value too (`checkValueSize`).
 * The SDK client is an optional peer dependency, imported here when the backend is built.
 *
 * @internal
 */
export const make = (
  options: AwsBackendOptions
): Effect.Effect<
  {
    readonly lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
    readonly describe: ReturnType<typeof AwsSecretMetadata.make>
    readonly pending: (key: string) => Effect.Effect<Option.Option<Redacted.Redacted<string>>, SecretError>
  },
  SecretsBackendUnavailable,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const { DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } = yield* OptionalClient.load({
      backend,
      packageName: "@aws-sdk/client-secrets-manager",
      version: "^3.1164",
      importer: () => import("@aws-sdk/client-secrets-manager")
    })
    const timeoutMs = Duration.toMillis(Duration.decode(options.requestTimeout))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new SecretsManagerClient({
          region: options.region,
          ...Option.match(options.endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) }),
          ignoreConfiguredEndpointUrls: true,
          maxAttempts: options.maxAttempts,
          // The options of the NodeHttpHandler the SDK builds. It uses an agent it is given as is
          // (destroying it with the client), so ours decides TLS verification.
          requestHandler: {
            connectionTimeout: timeoutMs,
            requestTimeout: timeoutMs,
            throwOnRequestTimeout: true,
            httpsAgent: TlsAgent.make(options.ca)
          }
        })
        boundResponseBodies(client)
        return client
      }),
      (client) => Effect.sync(() => client.destroy())
    )
    const where = Option.getOrElse(options.endpoint, () => `region ${options.region}`)
    const bounded = <A>(
      key: string,
      secretId: string,
      send: (signal: AbortSignal) => Promise<A>,
      classified: (error: unknown) => SecretError = classify(key, secretId, where, timeoutMs)
    ) =>
      Effect.tryPromise({ try: send, catch: classified }).pipe(
        Effect.timeoutFail({
          duration: options.requestTimeout,
          onTimeout: () => classify(key, secretId, where, timeoutMs)({ name: "TimeoutError" })
        })
      )
    const sendDescribe = (secretId: string, key: string) =>
      bounded(
        key,
        secretId,
        (signal) => client.send(new DescribeSecretCommand({ SecretId: secretId }), { abortSignal: signal }),
        (error) =>
          errorName(error) === "AccessDeniedException"
            ? AwsSecretMetadata.denied(key, secretId)
            : classify(key, secretId, where, timeoutMs)(error)
      )
    const describe = AwsSecretMetadata.make({ prefix: options.prefix, send: sendDescribe })
    const read = (key: string, selector: AwsRotation.VersionSelector) => {
      const secretId = `${options.prefix}${key}`
      return bounded(key, secretId, (signal) =>
        client.send(new GetSecretValueCommand({ SecretId: secretId, ...selector }), { abortSignal: signal })).pipe(
        Effect.flatMap(checkValueSize(key, secretId)),
        Effect.flatMap((output) =>
          Effect.map(extract(key, secretId, output), (value) => ({ versionId: output.VersionId, value }))
        ),
        Effect.withSpan("SecretsBackend.awsSecretsManager.get", { attributes: { key, secretId, ...selector } })
      )
    }
    const rotation = yield* AwsRotation.make({
      read,
      describe: (key) => sendDescribe(`${options.prefix}${key}`, key)
    })
    return { lookup: rotation.current, describe, pending: rotation.pending }
  })
