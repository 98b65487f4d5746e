/**
 * What a secrets backend can tell about a secret besides its value: when the value last changed,
 * when it was last rotated and whether rotation is scheduled. Used for the credential-age check
 * (`CredentialRotationOverdue` in @takumi/db, `takumi-db doctor`). Never carries the value.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
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
  /**
   * when the secret last changed (Secrets Manager `LastChangedDate`: any change, tags and
   * description included; Vault the current version's `created_time`, which a metadata-only
   * change such as `vault kv metadata put` does not move, unlike the metadata's `updated_time`)
   */
  readonly changedAt: Option.Option<Date>
  /** when a rotation last completed (Secrets Manager `LastRotatedDate`; Vault KV cannot tell) */
  readonly rotatedAt: Option.Option<Date>
  /**
   * whether a rotation schedule is on (Secrets Manager `RotationEnabled`, which it omits for a
   * secret never configured for rotation: `Some(false)` then; Vault KV cannot tell)
   */
  readonly rotationEnabled: Option.Option<boolean>
  /** the current version (Secrets Manager VersionId, Vault KV version number) */
  readonly versionId: Option.Option<string>
}

/**
 * When the current credential was set, for its age: the last completed rotation, else the last
 * change. Secrets Manager's `LastChangedDate` moves with any change to the secret (a tag, the
 * description), so a recorded rotation is the better witness; a value put by hand after a rotation
 * then counts from the rotation, which overstates the age (an early alert, never a missed one).
 * Vault KV has no rotation record: `changedAt` is the current version's `created_time`.
 *
 * @since 0.1.0
 * @category models
 */
export const setAt = (metadata: SecretMetadata): Option.Option<Date> =>
  Option.orElse(metadata.rotatedAt, () => metadata.changedAt)
