import { DbConfig } from "@takumi/config"
import * as Effect from "effect/Effect"

const program = Effect.gen(function*() {
  const settings = yield* DbConfig
  yield* Effect.log(`connecting to ${settings.host}:${settings.port} as ${settings.user}`)
})

// reads process.env (and ./.env in development and test), enforces the policy
program.pipe(Effect.provide(DbConfig.layer))
