/**
 * The credential-age rule of `CredentialRotationOverdue`: the password secret's age, read from
 * the backend (`SecretsBackend.describe`) at startup and then once a day, against
 * `settings.alerts.credentialMaxAge`.
 *
 * - A backend that cannot tell (`None`: the env and test backends, dynamic credentials, which
 *   have leases instead of an age) is exempt: nothing is checked, nothing logged.
 * - Without the permission to read metadata (`SecretAccessDenied`) one info line says so and names
 *   the permission (the error's own fix: `secretsmanager:DescribeSecret`, Vault `read` on
 *   `<mount>/metadata/<path>`). It is not an error: the password itself is readable and the
 *   program runs. The line is not repeated by the daily checks; a later grant is picked up.
 * - Any other failure (the backend unavailable) is one info line per check: the next day tries again.
 *
 * @internal
 */
import type { DbSettings } from "@takumi/config"
import { type SecretError, SecretMetadata, SecretsBackend } from "@takumi/secrets"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { CredentialRotationOverdue, type Service as AlertsService } from "../SecurityAlerts.js"
import { passwordKey } from "./credentials.js"

/** How often the age is checked after startup. */
export const checkInterval: Duration.Duration = Duration.days(1)

const dayMillis = 86_400_000

/** The alert for `metadata` at `now`, when its credential is older than `maxAge`. */
export const overdue = (
  metadata: SecretMetadata.SecretMetadata,
  now: number,
  maxAge: Duration.Duration
): Option.Option<CredentialRotationOverdue> =>
  Option.flatMap(SecretMetadata.setAt(metadata), (setAt) =>
    now - setAt.getTime() <= Duration.toMillis(maxAge)
      ? Option.none()
      : Option.some(
        new CredentialRotationOverdue({
          backend: metadata.backend,
          secret: metadata.secret,
          key: passwordKey,
          setAt: setAt.toISOString(),
          ageDays: Math.floor((now - setAt.getTime()) / dayMillis),
          maxAgeDays: Math.round(Duration.toMillis(maxAge) / dayMillis),
          ...Option.match(metadata.rotationEnabled, { onNone: () => ({}), onSome: (rotationEnabled) => ({ rotationEnabled }) })
        })
      ))

/** A credential within its age, at DEBUG: what the check saw, for whoever wonders whether it ran. */
const checked = (metadata: SecretMetadata.SecretMetadata, now: number) =>
  Effect.logDebug(
    `The database credential's age is within DB_CREDENTIAL_MAX_AGE: ${
      Option.match(SecretMetadata.setAt(metadata), {
        onNone: () => "the backend does not say when it was set",
        onSome: (setAt) => `set ${setAt.toISOString()}, ${Math.floor((now - setAt.getTime()) / dayMillis)} days ago`
      })
    }`
  ).pipe(Effect.annotateLogs({ check: "credential-age", backend: metadata.backend, secret: metadata.secret }))

const cannotRead = (error: SecretError) =>
  Effect.logInfo(
    `The age of the database credential is not checked (CredentialRotationOverdue): ${error.message}`
  ).pipe(Effect.annotateLogs({ check: "credential-age", backend: error.backend, reason: error._tag }))

/**
 * Checks now and then every `checkInterval` until the scope closes (forked: startup does not wait
 * for the backend's answer; the alerts service replays the startup alert to a later subscriber).
 */
export const watch = (
  settings: DbSettings,
  alerts: AlertsService
): Effect.Effect<void, never, Scope.Scope | SecretsBackend> =>
  Effect.gen(function*() {
    let deniedLogged = false
    const check = SecretsBackend.describe(passwordKey).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.void,
        onSome: (metadata) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Option.match(overdue(metadata, now, settings.alerts.credentialMaxAge), {
              onNone: () => checked(metadata, now),
              onSome: alerts.publish
            }))
      })),
      Effect.catchAll((error) => {
        if (error._tag !== "SecretAccessDenied") return cannotRead(error)
        if (deniedLogged) return Effect.void
        deniedLogged = true
        return cannotRead(error)
      }),
      Effect.withSpan("SecureSqlClient.credentialAge")
    )
    yield* check.pipe(Effect.repeat(Schedule.spaced(checkInterval)), Effect.forkScoped)
  })
