/**
 * `npm run example:aws-secrets-manager` — AWS Secrets Manager with an RDS-style JSON secret
 * (`{"username": ..., "password": ..., "host": ..., "port": ...}`). Of its fields only `password`
 * is read (as `DB_PASSWORD`); user, host and port come from `DB_*`, so a secret cannot redirect
 * the connection. The secret's id is `SECRETS_PREFIX` + `DB_PASSWORD`. Secrets Manager here is
 * SecretsManagerDouble from @takumi/testing, a local HTTPS server speaking the GetSecretValue wire
 * protocol — a protocol double, not AWS; it does not check SigV4 signatures.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import { SecretsManagerDouble } from "@takumi/testing"
import * as Effect from "effect/Effect"
import { heading, ok, runExample, type Session, sessionQuery, startDatabase, withEnvironment } from "./internal/harness.js"

const SECRET_ID = "takumi/example/DB_PASSWORD"

// The AWS SDK reads its credential chain from the process itself, not from our ConfigProvider;
// the double accepts any key. A deployment gets these from its role (IRSA, instance profile).
process.env["AWS_ACCESS_KEY_ID"] ??= "AKIAEXAMPLEDOUBLE"
process.env["AWS_SECRET_ACCESS_KEY"] ??= "example-double-secret"
// the SDK's notice about Node 22 (see README) is not what this example shows
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true"

runExample(
  "AWS Secrets Manager with an RDS-style JSON secret (SecretsManagerDouble: a protocol double, not AWS)",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    const aws = yield* SecretsManagerDouble.make({ region: "eu-west-1", tls: db.pki.server })
    yield* aws.putSecretString(
      SECRET_ID,
      // `username` names another role on purpose: the connection still uses DB_USER
      JSON.stringify({ engine: "postgres", username: "rds_admin", password: db.password, host: db.server.host, port: db.server.port })
    )
    yield* ok(`Secrets Manager double ${aws.endpoint} holding ${SECRET_ID} as RDS JSON`)

    yield* heading("TakumiDb.layer with SECRETS_BACKEND=aws-secrets-manager:")
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [session] = yield* sql.unsafe<Session>(sessionQuery)
      yield* ok(`the "password" field of the JSON secret was read (${yield* aws.requestCount(SECRET_ID)} GetSecretValue); its "username" was not`)
      yield* ok(`connected as ${session?.user} (DB_USER, not the secret's rds_admin); pg_stat_ssl: ssl=${session?.ssl} ${session?.version}`)
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({
        ...db.env,
        NODE_ENV: "production",
        SECRETS_BACKEND: "aws-secrets-manager",
        SECRETS_PREFIX: "takumi/example/",
        AWS_REGION: "eu-west-1",
        AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.endpoint,
        AWS_CA_BUNDLE: db.pki.ca.certPath
      })
    )
  })
)
