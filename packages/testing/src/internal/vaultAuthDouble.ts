/**
 * The token side of the Vault double: tokens with a TTL and a max TTL, the login endpoints of
 * the AppRole, Kubernetes and JWT auth methods, and `auth/token/lookup-self` / `renew-self` /
 * `revoke-self`, as Vault answers them (field names and status codes from Vault's API documentation). It is not
 * Vault: no policies, no accessors that work, no TokenReview behind the Kubernetes login (the
 * JWT is compared with the one the test configured).
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import * as LeakGuard from "../LeakGuard.js"
import * as Http from "./httpDouble.js"

/** @internal */
export interface TokenLifetime {
  /** seconds; 0 = the token never expires (like a root token) */
  readonly ttlSeconds?: number
  /** seconds from issue after which no renewal extends the token; 0 = none */
  readonly maxTtlSeconds?: number
  /** default true */
  readonly renewable?: boolean
}

/** @internal */
export type LoginConfig =
  | { readonly method: "approle"; readonly mount?: string; readonly roleId: string; readonly secretId: string }
  | { readonly method: "kubernetes" | "jwt"; readonly mount?: string; readonly role: string; readonly jwt: string }

interface Token {
  readonly issuedAt: number
  readonly ttlSeconds: number
  /** absolute ms; undefined = never expires */
  expiresAt: number | undefined
  /** absolute ms; undefined = no max */
  readonly maxExpiresAt: number | undefined
  readonly renewable: boolean
  readonly path: string
}

const errors = (status: number, messages: ReadonlyArray<string>): Http.HttpDoubleAnswer =>
  Http.json(status, { errors: messages })

const denied = errors(403, ["permission denied"])

const parseJson = (body: Buffer): Readonly<Record<string, unknown>> | undefined => {
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8") || "{}")
    return typeof parsed === "object" && parsed !== null ? parsed as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** Vault's answer to a login or a renewal: the token in `auth`, nothing in `data`. */
const authAnswer = (token: string, leaseSeconds: number, renewable: boolean, warnings: ReadonlyArray<string> | null) =>
  Http.json(200, {
    request_id: "00000000-0000-4000-8000-000000000010",
    lease_id: "",
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings,
    auth: {
      client_token: token,
      accessor: "accessor-not-implemented-by-the-double",
      policies: ["default", "takumi"],
      token_policies: ["default", "takumi"],
      metadata: null,
      lease_duration: leaseSeconds,
      renewable,
      entity_id: "",
      token_type: "service",
      orphan: true
    }
  })

/**
 * The tokens the double accepts and the auth endpoints that issue, look up and renew them.
 *
 * @internal
 */
export class VaultTokens {
  private readonly tokens = new Map<string, Token>()
  /** Logins that succeeded, per method. */
  readonly logins = new Map<string, number>()
  /** Tokens revoked by `revoke-self`. */
  revocations = 0
  /** When true, `renew-self` answers 500 (a Vault whose storage fails). */
  renewalFails = false

  constructor(
    readonly now: () => number,
    private readonly loginConfigs: ReadonlyArray<LoginConfig>,
    private readonly loginLifetime: TokenLifetime
  ) {}

  /** Accepts `token` from now on, with `lifetime` (default: never expires). */
  add(token: string, lifetime: TokenLifetime = {}, path = "auth/token/create"): void {
    const now = this.now()
    const ttlSeconds = lifetime.ttlSeconds ?? 0
    const maxTtl = lifetime.maxTtlSeconds ?? 0
    this.tokens.set(token, {
      issuedAt: now,
      ttlSeconds,
      expiresAt: ttlSeconds > 0 ? now + ttlSeconds * 1000 : undefined,
      maxExpiresAt: maxTtl > 0 ? now + maxTtl * 1000 : undefined,
      renewable: lifetime.renewable ?? true,
      path
    })
  }

  /** Forgets every token (a revocation of all of them). */
  clear(): void {
    this.tokens.clear()
  }

  /** Revokes one token: it gets 403 from now on. */
  revoke(token: string): void {
    this.tokens.delete(token)
  }

  /** The live token sent in `X-Vault-Token`; an expired one is dropped, as Vault's expiration manager does. */
  valid(header: string | ReadonlyArray<string> | undefined): { readonly id: string; readonly token: Token } | undefined {
    if (typeof header !== "string") return undefined
    const token = this.tokens.get(header)
    if (token === undefined) return undefined
    if (token.expiresAt !== undefined && this.now() >= token.expiresAt) {
      this.tokens.delete(header)
      return undefined
    }
    return { id: header, token }
  }

  /** `auth/...` requests: logins (no token needed), and lookup-self / renew-self (token needed). */
  handle(request: Http.HttpDoubleRequest, apiPath: string): Http.HttpDoubleAnswer | undefined {
    const login = /^auth\/(.+)\/login$/.exec(apiPath)
    if (login !== null && request.method === "POST" && login[1] !== undefined) return this.login(login[1], request.body)
    if (apiPath === "auth/token/lookup-self" && request.method === "GET") {
      const found = this.valid(request.headers["x-vault-token"])
      return found === undefined ? denied : this.lookupSelf(found.id, found.token)
    }
    if (apiPath === "auth/token/renew-self" && (request.method === "POST" || request.method === "PUT")) {
      const found = this.valid(request.headers["x-vault-token"])
      return found === undefined ? denied : this.renewSelf(found.id, found.token, request.body)
    }
    if (apiPath === "auth/token/revoke-self" && (request.method === "POST" || request.method === "PUT")) {
      const found = this.valid(request.headers["x-vault-token"])
      if (found === undefined) return denied
      this.tokens.delete(found.id)
      this.revocations += 1
      return { _tag: "Respond", status: 204, headers: {}, body: "" }
    }
    return undefined
  }

  private login(mount: string, body: Buffer): Http.HttpDoubleAnswer {
    const config = this.loginConfigs.find((candidate) => (candidate.mount ?? candidate.method) === mount)
    if (config === undefined) return errors(400, [`no handler for route "auth/${mount}/login". route entry not found.`])
    const input = parseJson(body)
    if (input === undefined) return errors(400, ["failed to parse JSON input"])
    if (config.method === "approle") {
      if (input.role_id !== config.roleId || input.secret_id !== config.secretId) {
        return errors(400, ["invalid role or secret ID"])
      }
    } else {
      if (input.role !== config.role) return errors(400, [`invalid role name "${String(input.role)}"`])
      if (input.jwt !== config.jwt) return errors(400, ["error validating token: invalid signature"])
    }
    const token = `hvs.double-${Crypto.randomBytes(18).toString("base64url")}`
    LeakGuard.registerUnsafe(token, `VaultDouble ${config.method} login token`)
    this.add(token, this.loginLifetime, `auth/${mount}/login`)
    this.logins.set(config.method, (this.logins.get(config.method) ?? 0) + 1)
    return authAnswer(token, this.loginLifetime.ttlSeconds ?? 0, this.loginLifetime.renewable ?? true, null)
  }

  private secondsLeft(token: Token): number {
    return token.expiresAt === undefined ? 0 : Math.max(0, Math.floor((token.expiresAt - this.now()) / 1000))
  }

  private lookupSelf(id: string, token: Token): Http.HttpDoubleAnswer {
    return Http.json(200, {
      request_id: "00000000-0000-4000-8000-000000000011",
      lease_id: "",
      renewable: false,
      lease_duration: 0,
      data: {
        accessor: "accessor-not-implemented-by-the-double",
        creation_time: Math.floor(token.issuedAt / 1000),
        creation_ttl: token.ttlSeconds,
        display_name: "token",
        entity_id: "",
        expire_time: token.expiresAt === undefined ? null : new Date(token.expiresAt).toISOString(),
        explicit_max_ttl: token.maxExpiresAt === undefined ? 0 : Math.round((token.maxExpiresAt - token.issuedAt) / 1000),
        id,
        issue_time: new Date(token.issuedAt).toISOString(),
        meta: null,
        num_uses: 0,
        orphan: true,
        path: token.path,
        policies: ["default", "takumi"],
        renewable: token.renewable,
        ttl: this.secondsLeft(token),
        type: "service"
      },
      wrap_info: null,
      warnings: null,
      auth: null
    })
  }

  /**
   * Extends the token by `increment` (default its original TTL), capped at its max TTL with the
   * warning Vault gives then.
   */
  private renewSelf(id: string, token: Token, body: Buffer): Http.HttpDoubleAnswer {
    if (this.renewalFails) return errors(500, ["internal error"])
    if (!token.renewable || token.expiresAt === undefined) return errors(400, ["lease is not renewable"])
    const input = parseJson(body) ?? {}
    const increment = typeof input.increment === "number" ? input.increment : token.ttlSeconds
    const now = this.now()
    let expiresAt = now + increment * 1000
    let warnings: ReadonlyArray<string> | null = null
    if (token.maxExpiresAt !== undefined && expiresAt > token.maxExpiresAt) {
      expiresAt = token.maxExpiresAt
      warnings = [`TTL of "${increment}s" exceeded the effective max_ttl; TTL value is capped accordingly`]
    }
    token.expiresAt = expiresAt
    return authAnswer(id, this.secondsLeft(token), token.renewable, warnings)
  }
}
