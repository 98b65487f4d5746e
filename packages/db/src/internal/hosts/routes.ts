/**
 * The routes of the primary's pool: every host of `DB_HOST` with TLS options of its own, so that
 * each certificate is checked against the name of the host it was reached at (and sent that name
 * by SNI) under the one TLS policy of the settings.
 *
 * @internal
 */
import type { DbSettings, ServerAddress } from "@takumi/config"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { TlsMaterialInvalid } from "../../DbError.js"
import { makeTlsOptions } from "../tlsOptions.js"
import type { HostRoute } from "./chooser.js"

/**
 * The routes, or `undefined` when a connection has nowhere to choose: one host and
 * `DB_TARGET_SESSION_ATTRS=any` (the single-host pool of before, unchanged).
 */
export const hostRoutes = (
  settings: DbSettings,
  hosts: ReadonlyArray<ServerAddress> | undefined
): Effect.Effect<ReadonlyArray<HostRoute> | undefined, TlsMaterialInvalid, Scope.Scope> =>
  hosts === undefined || (hosts.length <= 1 && settings.targetSessionAttrs === "any")
    ? Effect.succeed(undefined)
    : Effect.forEach(hosts, (server) =>
      Effect.map(makeTlsOptions(settings, server), (ssl): HostRoute => ({ host: server.host, port: server.port, ssl })))
