//! Where the admin API listens and which token it wants: the manifest's
//! `admin:` section with the environment on top, and the start-up policy
//! that a non-loopback admin address needs a token.

use std::{net::SocketAddr, path::Path};

use super::auth::Token;
use crate::{error::HostError, manifest::AdminSettings};

/// Overrides `admin.listen` (`IP:PORT` or `off`).
pub const LISTEN_ENV: &str = "COVET_ADMIN_LISTEN";
/// The admin token; takes precedence over `admin.token_file`.
pub const TOKEN_ENV: &str = "COVET_ADMIN_TOKEN";

/// The admin API as it will run.
#[derive(Debug)]
pub struct AdminConfig {
    /// The address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The bearer token every request must carry, when one is configured.
    pub token: Option<Token>,
}

impl AdminConfig {
    /// The admin API for `settings` and this process's environment; `None`
    /// when it is turned off. Fails (exit 2) when the token cannot be read
    /// or is empty, or when a non-loopback address has no token.
    pub fn resolve(settings: &AdminSettings) -> Result<Option<AdminConfig>, HostError> {
        AdminConfig::resolve_with(settings, |name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// [`AdminConfig::resolve`] with `env` standing in for the environment.
    pub fn resolve_with(
        settings: &AdminSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AdminConfig>, HostError> {
        let listen = match env(LISTEN_ENV) {
            Some(text) => AdminSettings::parse_listen(&text).map_err(|_| {
                HostError::Admin(format!("{LISTEN_ENV}=\"{text}\" is not an IP:PORT address (e.g. 127.0.0.1:9901) or `off`"))
            })?,
            None => settings.listen,
        };
        let Some(listen) = listen else { return Ok(None) };
        let token = match env(TOKEN_ENV) {
            Some(text) => Some(token(&text, TOKEN_ENV)?),
            None => settings.token_file.as_deref().map(read_token_file).transpose()?,
        };
        if token.is_none() && !is_loopback(listen) {
            return Err(HostError::Admin(refusal(listen)));
        }
        Ok(Some(AdminConfig { listen, token }))
    }
}

fn read_token_file(path: &Path) -> Result<Token, HostError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostError::Admin(format!("cannot read admin.token_file {}: {e}", path.display())))?;
    token(&text, &format!("admin.token_file {}", path.display()))
}

/// A token from `text` (surrounding whitespace trimmed); `origin` names where
/// it came from in errors.
fn token(text: &str, origin: &str) -> Result<Token, HostError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(HostError::Admin(format!("the admin token from {origin} is empty; put a secret in it")));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        let message = format!("the admin token from {origin} must be visible ASCII without spaces (it travels in an HTTP header)");
        return Err(HostError::Admin(message));
    }
    Ok(Token::new(text))
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

fn refusal(listen: SocketAddr) -> String {
    format!(
        "refusing to listen on {listen} without a token: anyone who can reach a non-loopback address could swap plugins. \
         Set a token with {TOKEN_ENV}=<secret> or `admin: {{ token_file: FILE }}` in the manifest, \
         or listen on a loopback address such as 127.0.0.1:9901 (`admin.listen` or {LISTEN_ENV}), \
         or turn the admin API off with `admin: {{ listen: off }}`"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(listen: &str) -> AdminSettings {
        AdminSettings { listen: AdminSettings::parse_listen(listen).unwrap(), token_file: None }
    }

    fn resolve(settings: &AdminSettings, env: &[(&str, &str)]) -> Result<Option<AdminConfig>, HostError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AdminConfig::resolve_with(settings, |name| env.get(name).cloned())
    }

    fn refused(result: Result<Option<AdminConfig>, HostError>) -> String {
        match result {
            Err(HostError::Admin(message)) => message,
            other => panic!("expected an admin error, got {other:?}"),
        }
    }

    #[test]
    fn loopback_without_a_token_is_allowed() {
        let config = resolve(&AdminSettings::default(), &[]).unwrap().unwrap();
        assert_eq!(config.listen, "127.0.0.1:9901".parse().unwrap());
        assert!(config.token.is_none());
        assert!(resolve(&settings("[::1]:0"), &[]).unwrap().is_some());
    }

    #[test]
    fn a_public_address_without_a_token_is_refused_naming_the_address() {
        let message = refused(resolve(&settings("0.0.0.0:9901"), &[]));
        assert!(message.contains("0.0.0.0:9901"), "{message}");
        assert!(message.contains(TOKEN_ENV) && message.contains("token_file"), "{message}");
    }

    #[test]
    fn the_environment_overrides_the_manifest() {
        let message = refused(resolve(&settings("127.0.0.1:9901"), &[(LISTEN_ENV, "0.0.0.0:0")]));
        assert!(message.contains("0.0.0.0:0"), "{message}");
        let config = resolve(&settings("0.0.0.0:1"), &[(LISTEN_ENV, "127.0.0.1:0"), (TOKEN_ENV, " s3cret\n")]);
        let config = config.unwrap().unwrap();
        assert_eq!(config.listen.port(), 0);
        assert!(config.token.is_some());
        assert!(resolve(&settings("0.0.0.0:1"), &[(LISTEN_ENV, "off")]).unwrap().is_none());
        assert!(refused(resolve(&settings("off"), &[(LISTEN_ENV, "nope")])).contains("\"nope\""));
    }

    #[test]
    fn an_empty_token_is_an_error() {
        let message = refused(resolve(&settings("0.0.0.0:0"), &[(TOKEN_ENV, "  \n")]));
        assert!(message.contains("is empty"), "{message}");
    }

    #[test]
    fn the_env_token_wins_over_the_token_file() {
        let mut settings = settings("0.0.0.0:0");
        settings.token_file = Some("/nonexistent/admin.token".into());
        assert!(resolve(&settings, &[(TOKEN_ENV, "abc")]).unwrap().unwrap().token.is_some());
        let message = refused(resolve(&settings, &[]));
        assert!(message.contains("cannot read admin.token_file /nonexistent/admin.token"), "{message}");
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("covet-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "t0ken\n").unwrap();
        let mut settings = settings("0.0.0.0:0");
        settings.token_file = Some(file.clone());
        let token = resolve(&settings, &[]).unwrap().unwrap().token.unwrap();
        assert!(token.matches(b"t0ken"));
        std::fs::write(&file, "\n").unwrap();
        assert!(refused(resolve(&settings, &[])).contains("is empty"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
