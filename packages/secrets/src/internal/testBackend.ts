import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { type SecretError, SecretNotFound } from "../SecretError.js"

/**
 * The in-memory backend behind `SecretsBackend.layerTest`: reads the current entries on every
 * `get` (no cache), so a test that changes the `Ref` sees the new value at once.
 *
 * @internal
 */
export const make = (entries: Ref.Ref<Readonly<Record<string, string>>>) => ({
  get: (key: string): Effect.Effect<Redacted.Redacted<string>, SecretError> =>
    Effect.flatMap(Ref.get(entries), (current) =>
      Object.prototype.hasOwnProperty.call(current, key) && current[key] !== undefined
        ? Effect.succeed(Redacted.make(current[key]))
        : Effect.fail(
          new SecretNotFound({
            backend: "test",
            key,
            message: `The test secrets backend has no entry ${key}. Fix: add it to SecretsBackend.layerTest({ ${key}: ... }).`
          })
        )),
  invalidate: (_key: string): Effect.Effect<void> => Effect.void
})
