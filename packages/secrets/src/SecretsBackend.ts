/**
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { SecretError } from "./SecretError.js"

/**
 * Where credentials come from. `get` resolves a key such as `DB_PASSWORD` to its value, kept
 * `Redacted`; `invalidate` forgets a cached value so the next `get` reads the backend again
 * (used after an authentication failure that suggests the secret was rotated).
 *
 * @since 0.1.0
 * @category tags
 */
export class SecretsBackend extends Context.Tag("@takumi/secrets/SecretsBackend")<SecretsBackend, {
  readonly get: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
  readonly invalidate: (key: string) => Effect.Effect<void>
}>() {}
