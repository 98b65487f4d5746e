/**
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category models
 */
export const BackendName = Schema.Literal("aws-secrets-manager", "vault", "env", "rds-iam", "test")

/**
 * @since 0.1.0
 * @category models
 */
export type BackendName = typeof BackendName.Type

/**
 * The secret does not exist at the backend (or the key is not a field of it).
 *
 * @since 0.1.0
 * @category errors
 */
export class SecretNotFound extends Schema.TaggedError<SecretNotFound>()("SecretNotFound", {
  backend: BackendName,
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * The backend refused the caller: IAM policy, Vault policy or token.
 *
 * @since 0.1.0
 * @category errors
 */
export class SecretAccessDenied extends Schema.TaggedError<SecretAccessDenied>()("SecretAccessDenied", {
  backend: BackendName,
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * The backend could not answer: network, timeout, 5xx, throttling, sealed Vault. Transient.
 *
 * @since 0.1.0
 * @category errors
 */
export class SecretsBackendUnavailable extends Schema.TaggedError<SecretsBackendUnavailable>()(
  "SecretsBackendUnavailable",
  {
    backend: BackendName,
    key: Schema.String,
    message: Schema.String
  }
) {}

/**
 * The backend answered with something that is not a usable secret (wrong shape, empty, binary
 * that is not UTF-8).
 *
 * @since 0.1.0
 * @category errors
 */
export class SecretMalformed extends Schema.TaggedError<SecretMalformed>()("SecretMalformed", {
  backend: BackendName,
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category errors
 */
export type SecretError = SecretNotFound | SecretAccessDenied | SecretsBackendUnavailable | SecretMalformed
