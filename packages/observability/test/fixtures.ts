/**
 * The minimum of `packages/db/test/fixtures.ts` these tests need (a test project may not import
 * another's files): settings for a local TLS test server and an in-memory secrets backend.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { DbConfig, type DbSettings, testSettings } from "@takumi/config"
import { SecretNotFound, SecretsBackend } from "@takumi/secrets"
import type { TestPki } from "@takumi/testing"

/** `testSettings` with TLS on and the test CA, database and user `app`, pool 0..4. */
export const makeSettings = (
  server: { readonly host: string; readonly port: number },
  pki: { readonly ca: Pick<TestPki.CertificateFiles, "certPath"> },
  overrides: Partial<Omit<DbSettings, "tls">> = {}
): DbSettings =>
  testSettings({
    environment: "development",
    host: server.host,
    port: server.port,
    database: "app",
    user: "app",
    applicationName: "takumi-observability-test",
    pool: { min: 0, max: 4 },
    secrets: { prefix: "takumi/test/" },
    ...overrides,
    tls: { ca: Option.some({ _tag: "File", path: pki.ca.certPath }) }
  })

/** A secrets backend answering from `entries`. */
export const secretsLayer = (entries: Record<string, string>): Layer.Layer<SecretsBackend> =>
  Layer.succeed(SecretsBackend, {
    get: (key) => {
      const value = entries[key]
      return value === undefined
        ? Effect.fail(new SecretNotFound({ backend: "test", key, message: `no secret ${key}` }))
        : Effect.succeed(Redacted.make(value))
    },
    invalidate: () => Effect.void
  })

/** The layer of settings. */
export const configLayer = (settings: DbSettings): Layer.Layer<DbConfig> => Layer.succeed(DbConfig, settings)
