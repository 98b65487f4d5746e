import { expect, it } from "@effect/vitest"
import { TestDatabase } from "@takumi/testing"
import * as Effect from "effect/Effect"

it.scoped("connects over verified TLS", () =>
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: "test-only" }], database: "app" })
    // connect to server.host:server.port with DB_SSL_CA=pki.ca.certPath; both are removed with the scope
    expect(pki.ca.certPath).toMatch(/\.pem$/)
    expect(server.port).toBeGreaterThan(0)
  }))
