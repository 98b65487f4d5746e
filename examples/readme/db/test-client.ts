import { DbConfig } from "@takumi/config"
import { SecureSqlClient } from "@takumi/db"
import { SecretsBackend } from "@takumi/secrets"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

// a test server's port and CA, e.g. from @takumi/testing's TestDatabase
export const testClient = (port: number, caPath: string) =>
  SecureSqlClient.layer.pipe(
    Layer.provide(DbConfig.layerTest({ host: "127.0.0.1", port, tls: { ca: Option.some({ _tag: "File", path: caPath }) } })),
    Layer.provide(SecretsBackend.layerTest({ DB_PASSWORD: "test-only" }))
  )
