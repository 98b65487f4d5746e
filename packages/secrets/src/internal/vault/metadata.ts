/**
 * The age of a Vault KV v2 secret: `GET /v1/<mount>/metadata/<path>`, the `created_time` of
 * `current_version` (falling back to `updated_time`). KV has no rotation schedule, so
 * `rotationEnabled` is unknown. Dynamic credentials (the database secrets engine) are exempt:
 * they have leases, not ages, and this backend does not read them.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SecretError } from "../../SecretError.js"
import type { SecretMetadata } from "../../SecretMetadata.js"

/** @internal */
export interface VaultMetadataOptions {
  /** `client.read(apiPath)` with the token and namespace headers, classified like a data read */
  readonly read: (apiPath: string, key: string) => Effect.Effect<unknown, SecretError>
  /** `<mount>/<path>` */
  readonly vaultPath: string
  /** `<mount>/metadata/<path>` */
  readonly metadataPath: string
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const dateOf = (value: unknown): Option.Option<Date> => {
  if (typeof value !== "string") return Option.none()
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? Option.none() : Option.some(date)
}

/** @internal */
export const fromBody = (vaultPath: string, body: unknown): SecretMetadata => {
  const data = isRecord(body) && isRecord(body.data) ? body.data : {}
  const current = typeof data.current_version === "number" ? data.current_version : undefined
  const versions = isRecord(data.versions) ? data.versions : {}
  const entry = current === undefined ? undefined : versions[String(current)]
  const created = isRecord(entry) ? dateOf(entry.created_time) : Option.none()
  return {
    backend: "vault",
    secret: vaultPath,
    changedAt: Option.orElse(created, () => dateOf(data.updated_time)),
    rotatedAt: Option.none(),
    rotationEnabled: Option.none(),
    versionId: current === undefined ? Option.none() : Option.some(String(current))
  }
}

/** @internal */
export const make = (options: VaultMetadataOptions) => (key: string): Effect.Effect<Option.Option<SecretMetadata>, SecretError> =>
  options.read(options.metadataPath, key).pipe(
    Effect.map((body) => Option.some(fromBody(options.vaultPath, body))),
    Effect.withSpan("SecretsBackend.vault.describe", { attributes: { key, path: options.metadataPath } })
  )
