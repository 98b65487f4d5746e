import { DbConfig } from "@takumi/config"
import { SecretsBackend } from "@takumi/secrets"
import { Effect, Layer, Redacted } from "effect"

const program = Effect.gen(function*() {
  const secrets = yield* SecretsBackend
  const password = yield* secrets.get("DB_PASSWORD") // Redacted<string>
  return Redacted.value(password).length // hand Redacted.value(password) to the driver, nowhere else
})

export const main = program.pipe(Effect.provide(SecretsBackend.layerFromConfig.pipe(Layer.provide(DbConfig.layer))))
