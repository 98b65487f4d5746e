import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { decode, prodBase } from "./fixtures.js"

describe("DbConfig with SECRETS_BACKEND=rds-iam", () => {
  it.effect("decodes the region into the AWS settings and, in production, accepts only cleartext password requests (how RDS asks for the token)", () =>
    Effect.gen(function*() {
      const settings = yield* decode({ ...prodBase, SECRETS_BACKEND: "rds-iam", AWS_REGION: "eu-west-1" })
      expect(settings.secrets.backend).toBe("rds-iam")
      expect(Option.map(settings.secrets.aws, (aws) => aws.region)).toEqual(Option.some("eu-west-1"))
      expect(settings.auth.requireAuth).toEqual(["password"])
    }))

  it.effect("requires AWS_REGION", () =>
    Effect.gen(function*() {
      const { AWS_REGION: _region, ...withoutRegion } = prodBase
      const error = yield* Effect.flip(decode({ ...withoutRegion, SECRETS_BACKEND: "rds-iam" }))
      expect(error.message).toContain("AWS_REGION")
      expect(error.message).toContain("SECRETS_BACKEND=rds-iam")
    }))

  it.effect("refuses DB_READ_REPLICA_HOST: a token is signed for DB_HOST:DB_PORT only", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        decode({ ...prodBase, SECRETS_BACKEND: "rds-iam", DB_READ_REPLICA_HOST: "replica.example.com" })
      )
      expect(error.message).toContain("DB_READ_REPLICA_HOST")
      expect(error.message).toContain("signed for DB_HOST:DB_PORT")
    }))
})
