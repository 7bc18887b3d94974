//! The plugin's config block, its defaults and checks.

use crate::{
    codec::Levels,
    negotiate::{Coding, DEFAULT_TYPES, TypePattern},
};

/// The `config:` block as written in the manifest.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The codings offered, most preferred first.
    pub encodings: Vec<Coding>,
    /// Responses with a known length below this are sent as they are.
    pub min_size: u64,
    /// Compressible content types (`text/*`, `application/json`, `+json`).
    pub types: Vec<String>,
    /// Levels per codec.
    pub levels: Levels,
    /// Decompress request bodies sent with `content-encoding: gzip|br|zstd`.
    pub decompress_requests: bool,
    /// The most bytes a request body may decompress to (413 past it).
    pub max_decompressed_size: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            encodings: vec![Coding::Brotli, Coding::Zstd, Coding::Gzip],
            min_size: 1024,
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            levels: Levels::default(),
            decompress_requests: false,
            max_decompressed_size: 10 * 1024 * 1024,
        }
    }
}

/// Settings checked and parsed for serving.
#[derive(Debug)]
pub struct Checked {
    /// See [`Settings::encodings`].
    pub encodings: Vec<Coding>,
    /// See [`Settings::min_size`].
    pub min_size: u64,
    /// The parsed content-type patterns.
    pub types: Vec<TypePattern>,
    /// See [`Settings::levels`].
    pub levels: Levels,
    /// See [`Settings::decompress_requests`].
    pub decompress_requests: bool,
    /// See [`Settings::max_decompressed_size`].
    pub max_decompressed_size: u64,
}

impl Settings {
    /// Checks the settings: at least one coding, none twice, valid levels and types.
    pub fn check(self) -> Result<Checked, crate::CompressError> {
        use crate::CompressError::Config;
        if self.encodings.is_empty() {
            return Err(Config("encodings must name at least one of br, zstd, gzip".into()));
        }
        if let Some(twice) = self.encodings.iter().enumerate().find(|(i, c)| self.encodings[..*i].contains(c)) {
            return Err(Config(format!("encodings names {} twice", twice.1.token())));
        }
        self.levels.check().map_err(Config)?;
        if self.max_decompressed_size == 0 {
            return Err(Config("max_decompressed_size must be at least 1".into()));
        }
        let types = self.types.iter().map(|t| TypePattern::parse(t)).collect::<Result<Vec<_>, _>>().map_err(Config)?;
        Ok(Checked {
            encodings: self.encodings,
            min_size: self.min_size,
            types,
            levels: self.levels,
            decompress_requests: self.decompress_requests,
            max_decompressed_size: self.max_decompressed_size,
        })
    }
}
