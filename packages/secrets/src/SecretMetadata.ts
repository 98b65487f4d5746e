/**
 * What a secrets backend can tell about a secret besides its value: when the value last changed,
 * when it was last rotated and whether rotation is scheduled. Used for the credential-age check
 * (`CredentialRotationOverdue` in @takumi/db, `takumi-db doctor`). Never carries the value.
 *
 * @since 0.1.0
 */
import type * as Option from "effect/Option"
import type { BackendName } from "./SecretError.js"

/**
 * A secret's metadata; each field is `None` where the backend cannot tell.
 *
 * @since 0.1.0
 * @category models
 */
export interface SecretMetadata {
  readonly backend: BackendName
  /** the secret's id or path, e.g. `takumi/production/DB_PASSWORD` or `secret/takumi/production` */
  readonly secret: string
  /** when the current value was written (Secrets Manager `LastChangedDate`, Vault the current version's `created_time`) */
  readonly changedAt: Option.Option<Date>
  /** when a rotation last completed (Secrets Manager `LastRotatedDate`; Vault KV cannot tell) */
  readonly rotatedAt: Option.Option<Date>
  /** whether a rotation schedule is on (Secrets Manager `RotationEnabled`; Vault KV cannot tell) */
  readonly rotationEnabled: Option.Option<boolean>
  /** the current version (Secrets Manager VersionId, Vault KV version number) */
  readonly versionId: Option.Option<string>
}

/**
 * When the current credential was set: the later of the last rotation and the last change.
 *
 * @since 0.1.0
 * @category models
 */
export const setAt = (metadata: SecretMetadata): Date | undefined => {
  const times = [metadata.rotatedAt, metadata.changedAt].flatMap((o) => (o._tag === "Some" ? [o.value.getTime()] : []))
  return times.length === 0 ? undefined : new Date(Math.max(...times))
}
