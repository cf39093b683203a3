//! A sparse registry's `config.json`: where crates are downloaded from (`dl`), the web API, and
//! whether the registry wants credentials for every request.

use serde::Deserialize;

use crate::index::{IndexError, require_object};

/// The fields of `config.json` the proxy reads and writes.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
pub struct RegistryConfig {
    /// The download URL or template (see [`crate::download_url`]).
    pub dl: String,
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default, rename = "auth-required")]
    pub auth_required: bool,
}

/// Reads a `config.json`; other fields are ignored.
pub fn parse_config(body: &[u8]) -> Result<RegistryConfig, IndexError> {
    require_object(body)?;
    Ok(serde_json::from_slice(body)?)
}

/// Cargo's error body, which it shows its user: `{"errors": [{"detail": …}]}`.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "errors": [{ "detail": message }] }).to_string()
}

/// Writes a `config.json`: `api` only when set, `auth-required` only when true (cargo reads a
/// missing one as false).
pub fn config_json(config: &RegistryConfig) -> String {
    let mut object = serde_json::Map::new();
    object.insert("dl".to_owned(), config.dl.clone().into());
    if let Some(api) = &config.api {
        object.insert("api".to_owned(), api.clone().into());
    }
    if config.auth_required {
        object.insert("auth-required".to_owned(), true.into());
    }
    serde_json::Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads() {
        let config =
            parse_config(br#"{"dl":"https://dl.example.com/{crate}","api":"https://api.example.com","auth-required":true,"x":1}"#)
                .unwrap();
        assert_eq!(
            config,
            RegistryConfig {
                dl: "https://dl.example.com/{crate}".into(),
                api: Some("https://api.example.com".into()),
                auth_required: true,
            }
        );
        assert_eq!(
            parse_config(b" {\"dl\":\"https://dl.example.com\"}").unwrap(),
            RegistryConfig { dl: "https://dl.example.com".into(), api: None, auth_required: false }
        );
    }

    #[test]
    fn refuses() {
        assert!(matches!(parse_config(br#"["https://dl.example.com"]"#), Err(IndexError::NotAnObject)));
        assert!(matches!(parse_config(b""), Err(IndexError::NotAnObject)));
        assert!(matches!(parse_config(br#"{"api":"https://api.example.com"}"#), Err(IndexError::Json(_))));
        assert!(matches!(parse_config(br#"{"dl":1}"#), Err(IndexError::Json(_))));
    }

    #[test]
    fn writes() {
        let plain = RegistryConfig {
            dl: "https://dl.example.com/api/v1/crates".into(),
            api: None,
            auth_required: false,
        };
        assert_eq!(config_json(&plain), r#"{"dl":"https://dl.example.com/api/v1/crates"}"#);
        let full = RegistryConfig {
            dl: "https://dl.example.com/{crate}".into(),
            api: Some("https://api.example.com".into()),
            auth_required: true,
        };
        assert_eq!(
            config_json(&full),
            r#"{"api":"https://api.example.com","auth-required":true,"dl":"https://dl.example.com/{crate}"}"#
        );
        for config in [plain, full] {
            assert_eq!(parse_config(config_json(&config).as_bytes()).unwrap(), config);
        }
    }
}
