/**
 * `VAULT_AUTH_METHOD` and the variables each method needs, checked together.
 *
 * @internal
 */
import * as Option from "effect/Option"
import type { VaultAuth } from "../DbSettings.js"
import { type VariableName, type Variables, variableInfo } from "./variables.js"

/** Where Kubernetes mounts a pod's service-account token. */
export const kubernetesTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

type Report = (variable: VariableName, message: string) => void

/**
 * The login the settings describe, or `None` after reporting what is missing. The mount
 * defaults to the method's name, as `vault auth enable <method>` mounts it.
 */
export const vaultAuthOf = (v: Variables, report: Report): Option.Option<VaultAuth> => {
  const method = Option.getOrElse(v.VAULT_AUTH_METHOD, () => "token" as const)
  const required = <A>(variable: VariableName, value: Option.Option<A>): Option.Option<A> => {
    if (Option.isNone(value)) {
      report(variable, `required when VAULT_AUTH_METHOD=${method} (${variableInfo[variable].expected})`)
    }
    return value
  }
  const mount = Option.getOrElse(v.VAULT_AUTH_MOUNT, () => method)
  // A login method gets its own token: a VAULT_TOKEN beside it would be ignored, which hides a
  // half-done migration (or a token left behind that still works).
  if (method !== "token" && Option.isSome(v.VAULT_TOKEN)) {
    report("VAULT_TOKEN", `is set, but VAULT_AUTH_METHOD=${method} logs in for its own token; unset VAULT_TOKEN`)
    return Option.none()
  }
  switch (method) {
    case "token":
      return Option.map(required("VAULT_TOKEN", v.VAULT_TOKEN), (token) => ({ method, token }))
    case "approle": {
      const roleId = required("VAULT_ROLE_ID", v.VAULT_ROLE_ID)
      if (Option.isSome(v.VAULT_SECRET_ID) && Option.isSome(v.VAULT_SECRET_ID_FILE)) {
        report("VAULT_SECRET_ID_FILE", "VAULT_SECRET_ID and VAULT_SECRET_ID_FILE are both set; set one of them")
        return Option.none()
      }
      const secretId = Option.orElse(
        Option.map(v.VAULT_SECRET_ID, (value) => ({ _tag: "Inline" as const, value })),
        () => Option.map(v.VAULT_SECRET_ID_FILE, (path) => ({ _tag: "File" as const, path }))
      )
      if (Option.isNone(secretId)) {
        report("VAULT_SECRET_ID", "required when VAULT_AUTH_METHOD=approle (or VAULT_SECRET_ID_FILE, a file holding it)")
      }
      return Option.all({ roleId, secretId }).pipe(Option.map((parts) => ({ method, mount, ...parts })))
    }
    case "kubernetes":
    case "jwt": {
      const role = required("VAULT_ROLE", v.VAULT_ROLE)
      const jwtFile = method === "kubernetes"
        ? Option.some(Option.getOrElse(v.VAULT_JWT_FILE, () => kubernetesTokenFile))
        : required("VAULT_JWT_FILE", v.VAULT_JWT_FILE)
      return Option.all({ role, jwtFile }).pipe(Option.map((parts) => ({ method, mount, ...parts })))
    }
  }
}
