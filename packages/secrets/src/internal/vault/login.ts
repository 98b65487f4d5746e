/**
 * Vault logins and the token calls (`auth/token/lookup-self`, `auth/token/renew-self`), through
 * node-vault's own commands (`approleLogin`, `kubernetesLogin`, `jwtLogin`, `tokenLookupSelf`,
 * `tokenRenewSelf`) on the backend's client and transport.
 *
 * @internal
 */
import type { VaultAuth } from "@takumi/config"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs/promises"
import { SecretAccessDenied, type SecretError, SecretsBackendUnavailable } from "../../SecretError.js"

/** A token and what Vault said of its life when it issued, looked up or renewed it. */
export interface Grant {
  readonly token: Redacted.Redacted<string>
  /** seconds left; 0 = the token does not expire (or its lifetime is unknown) */
  readonly ttlSeconds: number
  readonly renewable: boolean
}

/** The node-vault commands used here (its `client` has them all). */
export interface AuthClient {
  token: string
  approleLogin(options: object): Promise<unknown>
  kubernetesLogin(options: object): Promise<unknown>
  jwtLogin(options: object): Promise<unknown>
  tokenLookupSelf(options: object): Promise<unknown>
  tokenRenewSelf(options: object): Promise<unknown>
  write(path: string, data: object, requestOptions: object): Promise<unknown>
}

/** What the request options of one call need: the headers (token, namespace) and the abort signal. */
export type RequestOptions = { readonly headers: Readonly<Record<string, string>>; readonly signal: AbortSignal }

/**
 * One Vault call with the backend's timeout and error classification: `run` gets the request
 * options; a 400/401/403 answer becomes `SecretAccessDenied` with `denied`'s message.
 */
export type Send = (
  call: {
    readonly key: string
    readonly apiPath: string
    readonly token: Redacted.Redacted<string> | undefined
    readonly denied: (status: number) => string
  },
  run: (requestOptions: RequestOptions) => Promise<unknown>
) => Effect.Effect<unknown, SecretError>

const backend = "vault" as const

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const malformed = (apiPath: string, key: string) =>
  new SecretsBackendUnavailable({
    backend,
    key,
    message: `Vault answered ${apiPath} without a token lifetime (auth.client_token / data.ttl). ` +
      "Fix: check that VAULT_ADDR points at Vault itself, not at a proxy or another service."
  })

/** `auth` of a login or renewal answer. */
const grantOfAuth = (apiPath: string, key: string) => (body: unknown): Effect.Effect<Grant, SecretError> => {
  const auth = isRecord(body) && isRecord(body.auth) ? body.auth : undefined
  if (auth === undefined || typeof auth.client_token !== "string" || auth.client_token === "") {
    return Effect.fail(malformed(apiPath, key))
  }
  return Effect.succeed({
    token: Redacted.make(auth.client_token),
    ttlSeconds: typeof auth.lease_duration === "number" ? auth.lease_duration : 0,
    renewable: auth.renewable === true
  })
}

/** The secret a login sends, read from its file at each login (the platform rotates it there). */
const readSecretFile = (path: string, variable: string): Effect.Effect<Redacted.Redacted<string>, SecretError> =>
  Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (error) =>
      new SecretsBackendUnavailable({
        backend,
        key: variable,
        message: `Could not read ${variable}=${path} for the Vault login (${
          typeof error === "object" && error !== null && "code" in error ? String(error.code) : "read error"
        }). Fix: point ${variable} at the file the platform mounts (readable by this process).`
      })
  }).pipe(Effect.map((text) => Redacted.make(text.trim())))

type LoginAuth = Exclude<VaultAuth, { readonly method: "token" }>

const loginFix = (auth: LoginAuth): string => {
  switch (auth.method) {
    case "approle":
      return `check VAULT_ROLE_ID and VAULT_SECRET_ID${
        auth.secretId._tag === "File" ? "_FILE" : ""
      } (vault read auth/${auth.mount}/role/<role>/role-id; a secret_id may have expired or run out of uses)`
    case "kubernetes":
      return `check VAULT_ROLE ("${auth.role}") and that its bound service account and namespace match this pod ` +
        `(vault read auth/${auth.mount}/role/${auth.role})`
    case "jwt":
      return `check VAULT_ROLE ("${auth.role}"), the JWT in VAULT_JWT_FILE (expired? wrong audience?) and the ` +
        `role's bound claims (vault read auth/${auth.mount}/role/${auth.role})`
  }
}

/**
 * The login `auth` describes, with `VAULT_AUTH_MOUNT`: `POST auth/<mount>/login`. node-vault
 * keeps the token of a login answer on the client (`client.token`); it is cleared again at once,
 * so the only copy is the `Redacted` one and every request names its token explicitly.
 */
export const login = (client: AuthClient, auth: LoginAuth, send: Send): Effect.Effect<Grant, SecretError> => {
  const apiPath = `auth/${auth.mount}/login`
  const key = "VAULT_AUTH_METHOD"
  const call = (body: (secret: Redacted.Redacted<string>) => object, secret: Effect.Effect<Redacted.Redacted<string>, SecretError>) =>
    Effect.flatMap(secret, (value) =>
      send(
        {
          key,
          apiPath,
          token: undefined,
          denied: (status) =>
            `the ${auth.method} login at ${apiPath} was refused (HTTP ${status}). Fix: ${loginFix(auth)}.`
        },
        (requestOptions) => {
          const options = { mount_point: auth.mount, ...body(value), requestOptions }
          const answer = auth.method === "approle"
            ? client.approleLogin(options)
            : auth.method === "kubernetes"
            ? client.kubernetesLogin(options)
            : client.jwtLogin(options)
          return answer.finally(() => void (client.token = ""))
        }
      ))
  const sent = auth.method === "approle"
    ? call(
      (secretId) => ({ role_id: auth.roleId, secret_id: Redacted.value(secretId) }),
      auth.secretId._tag === "Inline"
        ? Effect.succeed(auth.secretId.value)
        : readSecretFile(auth.secretId.path, "VAULT_SECRET_ID_FILE")
    )
    : call((jwt) => ({ role: auth.role, jwt: Redacted.value(jwt) }), readSecretFile(auth.jwtFile, "VAULT_JWT_FILE"))
  return sent.pipe(
    Effect.flatMap(grantOfAuth(apiPath, key)),
    Effect.withSpan("SecretsBackend.vault.login", { attributes: { method: auth.method, path: apiPath } })
  )
}

const tokenDenied = (step: string) => (status: number) =>
  `${step} of the token was refused (HTTP ${status}): it has expired or was revoked. ` +
  "Fix: with VAULT_AUTH_METHOD=token give a live VAULT_TOKEN (vault token lookup); better, use a login method " +
  "(approle, kubernetes, jwt), which logs in again by itself."

/** `GET auth/token/lookup-self`: the TTL left (`data.ttl`) and whether it is renewable. */
export const lookupSelf = (
  client: AuthClient,
  token: Redacted.Redacted<string>,
  send: Send
): Effect.Effect<Grant, SecretError> => {
  const apiPath = "auth/token/lookup-self"
  return send(
    { key: "VAULT_TOKEN", apiPath, token, denied: tokenDenied("the lookup (auth/token/lookup-self)") },
    (requestOptions) => client.tokenLookupSelf({ requestOptions })
  ).pipe(
    Effect.flatMap((body) => {
      const data = isRecord(body) && isRecord(body.data) ? body.data : undefined
      return data === undefined || typeof data.ttl !== "number"
        ? Effect.fail(malformed(apiPath, "VAULT_TOKEN"))
        : Effect.succeed({ token, ttlSeconds: data.ttl, renewable: data.renewable === true })
    }),
    Effect.withSpan("SecretsBackend.vault.lookupSelf")
  )
}

/** `POST auth/token/renew-self`: the new TTL, capped by Vault at the token's max TTL. */
export const renewSelf = (
  client: AuthClient,
  token: Redacted.Redacted<string>,
  send: Send
): Effect.Effect<Grant, SecretError> => {
  const apiPath = "auth/token/renew-self"
  return send(
    { key: "VAULT_TOKEN", apiPath, token, denied: tokenDenied("the renewal (auth/token/renew-self)") },
    (requestOptions) => client.tokenRenewSelf({ requestOptions }).finally(() => void (client.token = ""))
  ).pipe(
    Effect.flatMap(grantOfAuth(apiPath, "VAULT_TOKEN")),
    // Vault answers with the same token; keep the one we hold, not a copy from the wire.
    Effect.map((grant) => ({ ...grant, token })),
    Effect.withSpan("SecretsBackend.vault.renewSelf")
  )
}

/**
 * `POST auth/token/revoke-self`, through `client.write`: node-vault's `tokenRevokeSelf` has no
 * schema, so it would send all its arguments, request options and token header included, as the
 * JSON body.
 */
export const revokeSelf = (
  client: AuthClient,
  token: Redacted.Redacted<string>,
  send: Send
): Effect.Effect<void, SecretError> =>
  send(
    { key: "VAULT_TOKEN", apiPath: "auth/token/revoke-self", token, denied: tokenDenied("the revocation (auth/token/revoke-self)") },
    (requestOptions) => client.write("auth/token/revoke-self", {}, requestOptions)
  ).pipe(Effect.asVoid, Effect.withSpan("SecretsBackend.vault.revokeSelf"))

/** @internal */
export const deniedError = (key: string, message: string) => new SecretAccessDenied({ backend, key, message })
