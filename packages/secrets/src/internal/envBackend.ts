import type { DbSettings } from "@takumi/config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { type SecretError, SecretNotFound } from "../SecretError.js"

const backend = "env" as const

const known = "DB_PASSWORD, DB_USER, DB_HOST, DB_PORT and DB_NAME"

/**
 * The development backend: values come from the decoded settings (`DB_PASSWORD` and friends),
 * never from `process.env` directly. It logs nothing itself: the relaxation (`SECRETS_BACKEND=env`
 * outside production) is warned about once by `SecurityPolicy.check` when the configuration is
 * loaded, and refused there in production.
 *
 * @internal
 */
export const make = (
  settings: DbSettings
): Effect.Effect<(key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>> =>
  Effect.succeed(
    (key: string) => {
      switch (key) {
        case "DB_PASSWORD":
          return Option.match(settings.password, {
            onNone: () =>
              Effect.fail(
                new SecretNotFound({
                  backend,
                  key,
                  message: "DB_PASSWORD is not set and SECRETS_BACKEND=env reads the password from it. " +
                    "Fix: set DB_PASSWORD (development and test only, e.g. in .env), or use a real secrets backend."
                })
              ),
            onSome: Effect.succeed
          })
        case "DB_USER":
          return Effect.succeed(Redacted.make(settings.user))
        case "DB_HOST":
          return Effect.succeed(Redacted.make(settings.host))
        case "DB_PORT":
          return Effect.succeed(Redacted.make(String(settings.port)))
        case "DB_NAME":
          return Effect.succeed(Redacted.make(settings.database))
        default:
          return Effect.fail(
            new SecretNotFound({
              backend,
              key,
              message: `SECRETS_BACKEND=env has no secret ${key}: it serves ${known} from the configuration. ` +
                "Fix: ask for one of those keys, or use SECRETS_BACKEND=aws-secrets-manager or vault."
            })
          )
      }
    }
  )
