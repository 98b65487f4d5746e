/**
 * A protocol-level test double of AWS Secrets Manager: a local HTTP(S) server on 127.0.0.1 that
 * speaks the AWS JSON 1.1 `GetSecretValue` operation well enough for the real
 * `@aws-sdk/client-secrets-manager` client pointed at it with `endpoint`. It is not AWS: it does
 * not verify SigV4 signatures, knows two operations (GetSecretValue, DescribeSecret), and keeps its secrets in memory.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Http from "./internal/httpDouble.js"
import * as internal from "./internal/secretsManagerDouble.js"
import * as LeakGuard from "./LeakGuard.js"

/**
 * A failure the double answers with instead of the secret: each AWS error in its JSON error
 * format (`__type` + `message`; HTTP 400, or 500 for `InternalServiceError`), `hang` to
 * accept the request and never answer, `huge-body` (a 200 that starts like a `GetSecretValue`
 * answer and streams filler, chunked, until the client hangs up or 1 GiB is sent) or
 * `huge-body-with-length` (the same, declaring `Content-Length: 1073741824` up front). The huge
 * bodies are streamed, never built in memory; `hugeBodyBytesSent` counts what was sent.
 *
 * @since 0.1.0
 * @category models
 */
export type SecretsManagerFault = internal.Fault

/**
 * One request the double received.
 *
 * @since 0.1.0
 * @category models
 */
export type SecretsManagerRequest = internal.RecordedRequest

/**
 * The four steps of a Secrets Manager rotation, in the order its rotation function runs them.
 *
 * @since 0.1.0
 * @category models
 */
export type RotationStep = "createSecret" | "setSecret" | "testSecret" | "finishSecret"

/**
 * What a rotation function does at the steps the double cannot do itself: `setSecret` changes
 * the database password to the pending value (e.g. `ALTER ROLE` on a `PgTestServer`),
 * `testSecret` checks that it works; `afterStep` runs after each of the four steps (to let a
 * workload run in every phase of the rotation).
 *
 * @since 0.1.0
 * @category models
 */
export interface RotationSteps<E, R> {
  /** the new value, stored as the AWSPENDING version by `createSecret` */
  readonly value: string
  readonly setSecret: (pending: string) => Effect.Effect<void, E, R>
  readonly testSecret: (pending: string) => Effect.Effect<void, E, R>
  readonly afterStep?: (step: RotationStep) => Effect.Effect<void, E, R>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SecretsManagerDouble {
  /** `http://127.0.0.1:<port>` (`https://` with `tls`): pass as the client's `endpoint`. */
  readonly endpoint: string
  /** The region used in ARNs (any region works for the client; the double ignores it). */
  readonly region: string
  /** Stores a new AWSCURRENT version with a `SecretString` (the previous one becomes AWSPREVIOUS); returns its VersionId. */
  readonly putSecretString: (name: string, value: string) => Effect.Effect<string>
  /** Stores a new AWSCURRENT version with a `SecretBinary` (sent base64 encoded); returns its VersionId. */
  readonly putSecretBinary: (name: string, value: Uint8Array) => Effect.Effect<string>
  /** Stores a version labelled AWSPENDING (rotation step one); AWSCURRENT is unchanged. */
  readonly putPending: (name: string, value: string) => Effect.Effect<string>
  /** Moves AWSCURRENT to the AWSPENDING version (rotation finished); false when nothing is pending. */
  readonly promotePending: (name: string) => Effect.Effect<boolean>
  /**
   * Runs a rotation of `name` through its four steps, like Secrets Manager invoking a rotation
   * function: `createSecret` stores `value` as AWSPENDING, `setSecret` and `testSecret` are the
   * caller's, `finishSecret` moves AWSCURRENT to the pending version (the old one becomes
   * AWSPREVIOUS) and records `LastRotatedDate`. A failing step ends the rotation there, AWSPENDING
   * left in place (as Secrets Manager leaves it). Returns the new VersionId.
   */
  readonly rotate: <E, R>(name: string, steps: RotationSteps<E, R>) => Effect.Effect<string, E, R>
  /** Forgets a secret: later reads get `ResourceNotFoundException`. */
  readonly deleteSecret: (name: string) => Effect.Effect<void>
  /** Answers every request for `secretId` (or every request, without one) with `fault`. */
  readonly fault: (fault: SecretsManagerFault, secretId?: string) => Effect.Effect<void>
  /** Removes every fault. */
  readonly clearFaults: Effect.Effect<void>
  /** Answers DescribeSecret for `secretId` with AccessDeniedException (GetSecretValue still works). */
  readonly denyDescribe: (secretId: string) => Effect.Effect<void>
  /**
   * Sets what DescribeSecret reports: `RotationEnabled`, `LastRotatedDate` (absent until given),
   * and optionally when the AWSCURRENT version was created (its `LastChangedDate`).
   */
  readonly setRotation: (
    name: string,
    options: { readonly enabled: boolean; readonly lastRotated?: Date; readonly currentCreated?: Date }
  ) => Effect.Effect<void>
  /**
   * Body bytes the `huge-body` faults have handed to the socket so far: far below 1 GiB means the
   * client stopped reading early.
   */
  readonly hugeBodyBytesSent: Effect.Effect<number>
  /** Every request received so far, oldest first. */
  readonly requests: Effect.Effect<ReadonlyArray<SecretsManagerRequest>>
  /** How many requests were received (for one secret id, when given). */
  readonly requestCount: (secretId?: string) => Effect.Effect<number>
}

/**
 * The double could not start.
 *
 * @since 0.1.0
 * @category errors
 */
export class SecretsManagerDoubleError extends Schema.TaggedError<SecretsManagerDoubleError>()(
  "SecretsManagerDoubleError",
  { message: Schema.String }
) {}

/** Registers a secret value with the leak guard, then stores it. */
const registered = <A>(value: string, name: string, put: () => A): Effect.Effect<A> =>
  LeakGuard.registerPayload(value, `SecretsManagerDouble secret ${name}`).pipe(Effect.zipRight(Effect.sync(put)))

/**
 * Starts the Secrets Manager double; it stops when the scope closes (hanging requests are cut).
 * With `tls` (e.g. a `TestPki` server certificate) it serves HTTPS, like a private endpoint whose
 * CA the client must be given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: {
    readonly region?: string
    readonly tls?: { readonly certPem: string; readonly keyPem: string }
  } = {}
): Effect.Effect<SecretsManagerDouble, SecretsManagerDoubleError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const region = options.region ?? "us-east-1"
    const state = new internal.SecretsManagerState(region, () => clock.unsafeCurrentTimeMillis())
    const server = yield* Http.listen({ tls: options.tls, handle: state.handle }).pipe(
      Effect.mapError((message) => new SecretsManagerDoubleError({ message: `SecretsManagerDouble: ${message}` }))
    )
    return {
      endpoint: server.url,
      region,
      putSecretString: (name, value) =>
        registered(value, name, () => state.put(name, { string: value }, "AWSCURRENT")),
      putSecretBinary: (name, value) =>
        registered(Buffer.from(value).toString("utf8"), name, () => state.put(name, { binary: value }, "AWSCURRENT")),
      putPending: (name, value) => registered(value, name, () => state.put(name, { string: value }, "AWSPENDING")),
      promotePending: (name) => Effect.sync(() => state.promotePending(name)),
      rotate: (name, steps) => {
        const after = (step: RotationStep) => steps.afterStep?.(step) ?? Effect.void
        return Effect.gen(function*() {
          const versionId = yield* registered(steps.value, name, () => state.put(name, { string: steps.value }, "AWSPENDING"))
          yield* after("createSecret")
          yield* steps.setSecret(steps.value)
          yield* after("setSecret")
          yield* steps.testSecret(steps.value)
          yield* after("testSecret")
          yield* Effect.sync(() => state.finishRotation(name))
          yield* after("finishSecret")
          return versionId
        })
      },
      deleteSecret: (name) => Effect.sync(() => void state.secrets.delete(name)),
      fault: (fault, secretId) => Effect.sync(() => void state.faults.set(secretId, fault)),
      clearFaults: Effect.sync(() => state.faults.clear()),
      denyDescribe: (secretId) => Effect.sync(() => void state.describeDenied.add(secretId)),
      setRotation: (name, { currentCreated, enabled, lastRotated }) =>
        Effect.sync(() =>
          void state.setRotation(name, {
            enabled,
            ...(lastRotated === undefined ? {} : { lastRotated: lastRotated.getTime() }),
            ...(currentCreated === undefined ? {} : { currentCreated: currentCreated.getTime() })
          })
        ),
      hugeBodyBytesSent: Effect.sync(() => state.hugeBodyBytesSent),
      requests: Effect.sync(() => [...state.requests]),
      requestCount: (secretId) =>
        Effect.sync(() =>
          secretId === undefined
            ? state.requests.length
            : state.requests.filter((request) => request.secretId === secretId).length
        )
    }
  })
