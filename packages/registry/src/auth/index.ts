/**
 * Registry authentication: credentials (Docker config, credential helpers, podman, static, anonymous),
 * `WWW-Authenticate` challenges and the token cache ({@link RegistryAuth}).
 *
 * @packageDocumentation
 */

export { type AuthChallenge, parseWwwAuthenticate } from "./challenge.ts";
export {
  type CredentialHelperOptions,
  DEFAULT_HELPER_TIMEOUT_MS,
  runCredentialHelper,
} from "./credential-helper.ts";
export {
  anonymousCredentials,
  type Credential,
  type CredentialLookupOptions,
  type CredentialStore,
  chainCredentials,
  staticCredentials,
} from "./credentials.ts";
export { type DockerCredentialsOptions, dockerCredentials } from "./docker-config.ts";
export { DOCKER_HUB_ALIASES, isDockerHub, isLoopbackHost, normalizeHost } from "./host.ts";
export {
  type AuthorizationOptions,
  DEFAULT_TOKEN_EXPIRES_IN_SECONDS,
  DEFAULT_TOKEN_TIMEOUT_MS,
  RegistryAuth,
  type RegistryAuthOptions,
  type RespondOptions,
} from "./registry-auth.ts";
