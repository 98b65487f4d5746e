/**
 * `doctor`'s credential checks: the password secret's age and rotation (what
 * `CredentialRotationOverdue` judges at startup), and `--compare-environment <other>`: whether
 * another environment's secret holds the same password ("NEVER share database credentials across
 * environments").
 *
 * The other environment's secret is found by substituting the environment's name in the secret's
 * location: the path segment equal to `NODE_ENV` in `SECRETS_PREFIX` (Secrets Manager:
 * `takumi/production/` -> `takumi/staging/`, secret `takumi/staging/DB_PASSWORD`) or in
 * `VAULT_PATH` (`secret/takumi/production` -> `secret/takumi/staging`). Exactly one segment must
 * name the environment (the policy's `secret-path-environment` rule already refuses a location
 * naming another one), otherwise the mapping is ambiguous and the check says so. It is read with
 * the same backend, endpoint and credentials as the program's own secret, so the doctor's
 * identity needs read access to both (`secretsmanager:GetSecretValue` on both secret ids, a Vault
 * policy with `read` on both `data/` paths; `DescribeSecret` / `metadata` read for version ids).
 *
 * The passwords are compared as SHA-256 digests with `crypto.timingSafeEqual`; neither password
 * nor digest is kept, printed or logged.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import type { DbSettings, Environment } from "@takumi/config"
import { type SecretError, SecretMetadata, SecretsBackend } from "@takumi/secrets"
import type { ComparisonResult, CredentialResult } from "../Doctor.js"

const passwordKey = "DB_PASSWORD"
const dayMillis = 86_400_000

/** The password secret's age and rotation, from the backend the settings name. */
export const inspectCredential = (settings: DbSettings): Effect.Effect<CredentialResult> =>
  settings.secrets.backend === "env"
    ? Effect.succeed({ _tag: "CannotTell", backend: "env" })
    : readCredential(settings)

const readCredential = (settings: DbSettings): Effect.Effect<CredentialResult> =>
  Effect.gen(function*() {
    const backend = yield* SecretsBackend.makeFromSettings(settings)
    const described = yield* Effect.either(SecretsBackend.describe(passwordKey).pipe(
      Effect.provideService(SecretsBackend, backend)
    ))
    if (Either.isLeft(described)) return { _tag: "Unreadable", error: described.left } as const
    if (Option.isNone(described.right)) return { _tag: "CannotTell", backend: settings.secrets.backend } as const
    const metadata = described.right.value
    const now = yield* Clock.currentTimeMillis
    const maxAgeDays = Math.round(Duration.toMillis(settings.alerts.credentialMaxAge) / dayMillis)
    const age = Option.map(SecretMetadata.setAt(metadata), (setAt) => ({
      setAt,
      days: Math.floor((now - setAt.getTime()) / dayMillis)
    }))
    const overdue = Option.exists(SecretMetadata.setAt(metadata), (setAt) =>
      now - setAt.getTime() > Duration.toMillis(settings.alerts.credentialMaxAge))
    return { _tag: "Read", metadata, age, maxAgeDays, overdue } as const
  }).pipe(
    Effect.catchAll((error) => Effect.succeed({ _tag: "Unreadable", error } as const)),
    Effect.scoped
  )

/** `location` with the one path segment equal to `from` replaced by `to`; `undefined` unless exactly one is. */
const substitute = (location: string, from: Environment, to: Environment): string | undefined => {
  const segments = location.split("/")
  const at = segments.flatMap((segment, index) => (segment === from ? [index] : []))
  if (at.length !== 1) return undefined
  return segments.map((segment, index) => (index === at[0] ? to : segment)).join("/")
}

/** The settings that read `other`'s secret with the same backend and access, and that secret's name. */
const otherSecret = (
  settings: DbSettings,
  other: Environment
): Either.Either<{ readonly settings: DbSettings; readonly secret: string; readonly own: string }, string> => {
  const env = settings.environment
  const secrets = settings.secrets
  const ambiguous = (variable: string, value: string) =>
    `${variable} "${value}" does not name the environment "${env}" as exactly one path segment, so the location ` +
    `of ${other}'s secret cannot be derived from it. Fix: keep each environment's secrets under a segment named ` +
    `for it (e.g. takumi/${env}/ and takumi/${other}/).`
  if (secrets.backend === "vault" && Option.isSome(secrets.vault)) {
    const vault = secrets.vault.value
    const path = substitute(vault.path, env, other)
    return path === undefined
      ? Either.left(ambiguous("VAULT_PATH", vault.path))
      : Either.right({
        settings: { ...settings, secrets: { ...secrets, vault: Option.some({ ...vault, path }) } },
        secret: path,
        own: vault.path
      })
  }
  const prefix = substitute(secrets.prefix, env, other)
  return prefix === undefined
    ? Either.left(ambiguous("SECRETS_PREFIX", secrets.prefix))
    : Either.right({
      settings: { ...settings, secrets: { ...secrets, prefix } },
      secret: `${prefix}${passwordKey}`,
      own: `${secrets.prefix}${passwordKey}`
    })
}

const digest = (value: Redacted.Redacted<string>): Buffer =>
  Crypto.createHash("sha256").update(Redacted.value(value), "utf8").digest()

/** Both SHA-256 digests are 32 bytes, as `timingSafeEqual` requires. */
const samePassword = (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>): boolean =>
  Crypto.timingSafeEqual(digest(a), digest(b))

/** The current version id where the backend tells it (none without the metadata permission). */
const versionOf = (backend: SecretsBackend["Type"]): Effect.Effect<Option.Option<string>> =>
  SecretsBackend.describe(passwordKey).pipe(
    Effect.map(Option.flatMap((metadata) => metadata.versionId)),
    Effect.orElseSucceed(() => Option.none<string>()),
    Effect.provideService(SecretsBackend, backend)
  )

const readBoth = (
  own: DbSettings,
  other: DbSettings
): Effect.Effect<
  { readonly equal: boolean; readonly versionId: Option.Option<string>; readonly otherVersionId: Option.Option<string> },
  SecretError
> =>
  Effect.gen(function*() {
    const ownBackend = yield* SecretsBackend.makeFromSettings(own)
    const otherBackend = yield* SecretsBackend.makeFromSettings(other)
    const equal = samePassword(yield* ownBackend.get(passwordKey), yield* otherBackend.get(passwordKey))
    return { equal, versionId: yield* versionOf(ownBackend), otherVersionId: yield* versionOf(otherBackend) }
  }).pipe(Effect.scoped)

/** `--compare-environment <other>`: whether `other`'s password secret holds the same password. */
export const compareEnvironment = (settings: DbSettings, other: Environment): Effect.Effect<ComparisonResult> => {
  const environment = settings.environment
  if (settings.secrets.backend === "env") {
    return Effect.succeed({
      _tag: "CannotTell",
      other,
      reason: "the env backend reads DB_PASSWORD from this process's environment only; it cannot read " +
        `${other}'s, so it cannot tell whether the two are shared (use a secrets backend: aws-secrets-manager or vault)`
    })
  }
  if (other === environment) {
    return Effect.succeed({
      _tag: "Failed",
      other,
      reason: `--compare-environment names this environment (${environment}); name another one`
    })
  }
  return Either.match(otherSecret(settings, other), {
    onLeft: (reason) => Effect.succeed({ _tag: "Failed", other, reason } as const),
    onRight: (target) =>
      readBoth(settings, target.settings).pipe(
        Effect.map((read): ComparisonResult => ({
          _tag: "Compared",
          environment,
          other,
          secret: target.own,
          otherSecret: target.secret,
          ...read
        })),
        Effect.catchAll((error) =>
          Effect.succeed({ _tag: "Failed", other, reason: `${error._tag}: ${error.message}` } as const)
        )
      )
  })
}
