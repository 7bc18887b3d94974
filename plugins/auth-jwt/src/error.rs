//! [`ConfigError`]: every reason `init` refuses a config. Messages say what to
//! change; none ever contains a secret's value (only the variable's name).

use std::path::PathBuf;

use thiserror::Error;

/// Why the auth-jwt config was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Serde could not read the block (unknown field, wrong type).
    #[error("{0}")]
    Parse(String),
    /// `keys:` is missing or empty.
    #[error(
        "keys: the list is empty; give at least one key (secret_env, pem_file, jwks_file, jwks_url or oidc_discovery)"
    )]
    NoKeys,
    /// A list field was given but empty.
    #[error("{0}: the list is empty; remove the field or give values")]
    EmptyList(&'static str),
    /// A string in a list field is empty.
    #[error("{0}: values must not be empty strings")]
    EmptyValue(&'static str),
    /// Not an HTTP header name.
    #[error("{field}: `{name}` is not a valid header name")]
    BadHeaderName { field: String, name: String },
    /// Not an HTTP auth scheme.
    #[error("scheme: `{0}` is not a valid auth scheme (a single token like `Bearer`, or \"\" for a bare token)")]
    BadScheme(String),
    /// Two claims forwarded into one header.
    #[error("forward_claims: header `{0}` is set from two claims")]
    DuplicateForwardHeader(String),
    /// Two keys share a `kid`.
    #[error("keys: kid `{0}` is used by more than one key; kids must be unique")]
    DuplicateKid(String),
    /// A `jwks_url` or `oidc_discovery` that is not an HTTP(S) URL.
    #[error("keys: `{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    /// `remote_keys` with a zero `min_refresh_interval` or `timeout`.
    #[error("remote_keys: min_refresh_interval and timeout must be more than zero")]
    ZeroDuration,
    /// `refresh_interval` shorter than `min_refresh_interval`.
    #[error("remote_keys: refresh_interval must not be shorter than min_refresh_interval")]
    RefreshBounds,
    /// `jwks_url`/`oidc_discovery` without the host's HTTP service.
    #[error("keys: jwks_url and oidc_discovery need the host's outbound HTTP service, which this host does not offer")]
    NoHttpService,
    /// A remote key URL the manifest does not let the plugin fetch.
    #[error("keys: {url} cannot be fetched: {reason}")]
    NotGranted { url: String, reason: String },
    /// `require_keys_at_start` and the first fetch failed.
    #[error("remote_keys.require_keys_at_start: the first key fetch failed: {0}")]
    FirstFetch(String),
    /// A host service the plugin needs at load failed.
    #[error("the host's services: {0}")]
    Host(covet_plugin_api::host::ServiceError),
    /// A problem with one entry of `keys:`, with where it is.
    #[error("{at}: {source}")]
    At { at: String, source: KeyError },
}

/// Why one key entry (or one key of a JWK set) was refused.
#[derive(Debug, Error)]
pub enum KeyError {
    /// None or several of the key sources.
    #[error("give exactly one of secret_env, pem_file, jwks_file, jwks_url or oidc_discovery")]
    Source,
    /// `algorithms` missing or empty where it is required.
    #[error("`algorithms` is required and must not be empty (e.g. [RS256])")]
    NoAlgorithms,
    /// A name that is not a supported signing algorithm.
    #[error(
        "unsupported algorithm `{0}`; supported: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (`none` is never accepted)"
    )]
    UnknownAlgorithm(String),
    /// Algorithms of different families on one key.
    #[error(
        "algorithms mix {0} and {1}; one key verifies one family (HS*, RS*/PS*, ES*, EdDSA): split it into two keys"
    )]
    MixedFamilies(String, String),
    /// The algorithm family does not fit the kind of key material.
    #[error("{source_kind} cannot verify {alg}: {hint}")]
    WrongSource { source_kind: &'static str, alg: String, hint: &'static str },
    /// The secret's environment variable is unset or empty.
    #[error("environment variable `{0}` (secret_env) is not set or is empty")]
    SecretUnset(String),
    /// The secret is shorter than the hash (RFC 7518 §3.2).
    #[error(
        "the secret in `{var}` is shorter than {min} bytes, the minimum for {alg} (RFC 7518 §3.2); use a longer random secret"
    )]
    SecretTooShort { var: String, alg: String, min: usize },
    /// `kid` given next to a JWK set source.
    #[error("`kid` cannot be set with jwks_file, jwks_url or oidc_discovery: each key's kid comes from the set")]
    KidWithJwks,
    /// A file could not be read.
    #[error("cannot read `{}`{}: {error}", path.display(), relative_hint(path))]
    Read { path: PathBuf, error: std::io::Error },
    /// A PEM file with a private key.
    #[error("`{}` holds a private key; give the public key (openssl pkey -in KEY -pubout)", path.display())]
    PrivatePem { path: PathBuf },
    /// A PEM file that is not a public key of the expected kind.
    #[error("`{}` is not {kind} public key in PEM format", path.display())]
    BadPem { path: PathBuf, kind: &'static str },
    /// The key's shape does not fit an algorithm (EC curve, Ed25519 length).
    #[error("{alg} needs {needs}, but this key is {found}")]
    Shape { alg: String, needs: &'static str, found: String },
    /// RSA modulus too small to verify with.
    #[error("the RSA key has about {0} bits; at least 2048 are required")]
    RsaTooSmall(usize),
    /// A JWK set that does not parse.
    #[error("`{}` is not a JWK set ({error})", path.display())]
    BadJwks { path: PathBuf, error: String },
    /// A JWK set without one signing key.
    #[error("`{}` has no signing keys", path.display())]
    EmptyJwks { path: PathBuf },
    /// A JWK without `alg` and no `algorithms` on the entry.
    #[error("the JWK has no `alg`: add one to the JWK or give `algorithms` on this entry")]
    JwkNoAlgorithm,
    /// A JWK whose `alg` is outside the entry's `algorithms`.
    #[error("the JWK's alg {0} is not among this entry's `algorithms`")]
    JwkAlgorithmNotListed(String),
    /// The key material's type cannot verify the algorithm.
    #[error("{alg} cannot be verified with {family} key material")]
    KeyTypeMismatch { alg: String, family: &'static str },
    /// Key material that does not parse as a public key of its family.
    #[error("the key is not a usable {0} public key")]
    Unusable(&'static str),
    /// A problem with one key of a JWK set.
    #[error("key {index}{} of the set: {source}", kid.as_deref().map(|k| format!(" (kid `{k}`)")).unwrap_or_default())]
    InJwks { index: usize, kid: Option<String>, source: Box<KeyError> },
    /// An HTTP fetch of a key set or discovery document failed.
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// A fetched document that is not what it should be.
    #[error("{url}: {reason}")]
    BadDocument { url: String, reason: String },
    /// A discovery document for another issuer (OIDC Discovery §4.3).
    #[error("{url} names the issuer `{found}`, not the configured `{expected}`")]
    IssuerMismatch { url: String, expected: String, found: String },
    /// A fetched JWK set without one usable signing key.
    #[error("{url}: the JWK set has no usable signing key")]
    NoUsableKeys { url: String },
    /// A JWK whose key type is not supported.
    #[error("unsupported JWK key type: use RSA, EC (P-256, P-384), OKP (Ed25519) or oct")]
    JwkKeyType,
}

impl ConfigError {
    /// Wraps a key error with where it happened, e.g. `keys[1] (kid rsa-1)`.
    pub fn at(at: impl Into<String>, source: KeyError) -> ConfigError {
        ConfigError::At { at: at.into(), source }
    }
}

/// For a relative path, where it was looked for.
fn relative_hint(path: &std::path::Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => {
            format!(" (relative paths are read from the working directory `{}`)", cwd.display())
        }
        _ => String::new(),
    }
}
