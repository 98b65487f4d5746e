/**
 * The Secrets Manager rotation window, from the reader's side.
 *
 * A rotation has four steps: `createSecret` stores a new version labelled AWSPENDING,
 * `setSecret` changes the database password to it, `testSecret` tries it, and `finishSecret`
 * moves AWSCURRENT onto it. Between `setSecret` and `finishSecret` the database accepts only
 * the AWSPENDING value while AWSCURRENT still holds the old one, so a client that re-reads
 * AWSCURRENT after a refused password finds the same old value. `pending` reads AWSPENDING for
 * that case (@takumi/db tries it once after the re-read of AWSCURRENT was refused too).
 *
 * `current` notices a new AWSCURRENT version with `DescribeSecret` (`VersionIdsToStages`)
 * instead of fetching the value on every cache expiry: the value is fetched (by its VersionId,
 * so the value and the version seen belong together) only when the version changed, and in
 * any case at least once per `valueRecheckInterval`.
 *
 * @internal
 */
import type { DescribeSecretCommandOutput } from "@aws-sdk/client-secrets-manager"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { SecretError } from "../../SecretError.js"

/** Which version a `GetSecretValue` asks for. */
export type VersionSelector =
  | { readonly VersionId: string }
  | { readonly VersionStage: "AWSCURRENT" | "AWSPENDING" }

/** A value with the VersionId Secrets Manager answered it with. */
export interface VersionedValue {
  readonly versionId: string | undefined
  readonly value: Redacted.Redacted<string>
}

/** @internal */
export interface RotationOptions {
  /** `GetSecretValue` of `key`'s secret for the selector, bounded, checked and extracted */
  readonly read: (key: string, selector: VersionSelector) => Effect.Effect<VersionedValue, SecretError>
  /** `DescribeSecret` of `key`'s secret, bounded and classified like a read */
  readonly describe: (key: string) => Effect.Effect<DescribeSecretCommandOutput, SecretError>
}

/**
 * How long a value may be confirmed by `DescribeSecret` alone before it is fetched again. A
 * `DescribeSecret` shows a new version or a deleted secret, but not that the role lost
 * `secretsmanager:GetSecretValue`: this bounds how long such a revocation goes unnoticed.
 */
export const valueRecheckInterval: Duration.Duration = Duration.hours(1)

/** The VersionId that carries `stage` in a DescribeSecret answer. */
export const versionWithStage = (output: DescribeSecretCommandOutput, stage: string): string | undefined =>
  Object.entries(output.VersionIdsToStages ?? {}).find(([, stages]) => stages.includes(stage))?.[0]

interface Known extends VersionedValue {
  /** when the value itself was last fetched (Clock millis) */
  readonly fetchedAt: number
}

/** @internal */
export const make = (options: RotationOptions) =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const recheckMs = Duration.toMillis(valueRecheckInterval)
    const known = new Map<string, Known>()
    // keys whose DescribeSecret was refused: they are read with GetSecretValue every time, as
    // before this module existed, and the warning is logged once per key
    const describeDenied = new Set<string>()

    const fetch = (key: string, selector: VersionSelector) =>
      Effect.map(options.read(key, selector), (read) => {
        known.set(key, { ...read, fetchedAt: clock.unsafeCurrentTimeMillis() })
        return read.value
      })

    const fetchCurrent = (key: string) => fetch(key, { VersionStage: "AWSCURRENT" })

    const fromDescription = (key: string, last: Known) => (output: DescribeSecretCommandOutput) => {
      const versionId = versionWithStage(output, "AWSCURRENT")
      // a secret scheduled for deletion still describes; GetSecretValue then fails closed
      if (output.DeletedDate !== undefined || versionId === undefined) return fetchCurrent(key)
      const fresh = clock.unsafeCurrentTimeMillis() - last.fetchedAt < recheckMs
      return versionId === last.versionId && fresh ? Effect.succeed(last.value) : fetch(key, { VersionId: versionId })
    }

    const withoutDescribe = (key: string) => {
      if (describeDenied.has(key)) return fetchCurrent(key)
      describeDenied.add(key)
      return Effect.logWarning(
        "AWS Secrets Manager refused DescribeSecret: every cache expiry now fetches the secret value. " +
          "Fix: grant secretsmanager:DescribeSecret on the secret."
      ).pipe(Effect.annotateLogs({ key }), Effect.zipRight(fetchCurrent(key)))
    }

    /** The AWSCURRENT value: fetched on the first read, afterwards only when its version changed. */
    const current = (key: string): Effect.Effect<Redacted.Redacted<string>, SecretError> =>
      Effect.suspend(() => {
        const last = known.get(key)
        if (last === undefined || last.versionId === undefined || describeDenied.has(key)) return fetchCurrent(key)
        return options.describe(key).pipe(
          Effect.catchTag("SecretAccessDenied", () => Effect.succeed(undefined)),
          Effect.flatMap((output) => output === undefined ? withoutDescribe(key) : fromDescription(key, last)(output))
        )
      })

    /**
     * The AWSPENDING value when a rotation is in progress: `GetSecretValue` with
     * `VersionStage=AWSPENDING`. `None` when no version carries the label (Secrets Manager
     * answers ResourceNotFoundException) or it is the AWSCURRENT version already read.
     */
    const pending = (key: string): Effect.Effect<Option.Option<Redacted.Redacted<string>>, SecretError> =>
      options.read(key, { VersionStage: "AWSPENDING" }).pipe(
        Effect.map((read) =>
          read.versionId !== undefined && read.versionId === known.get(key)?.versionId
            ? Option.none()
            : Option.some(read.value)
        ),
        Effect.catchTag("SecretNotFound", () => Effect.succeedNone)
      )

    return { current, pending }
  })
