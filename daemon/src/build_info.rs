//! What this build is (issue 15 §4): the crate version, the git commit it was built from and
//! the Cargo profile, recorded by the crate's `build.rs`. Both binaries print
//! [`LONG_VERSION`] for `--version`; `dsdnd` exports them as the `dsdn_build_info` gauge.

use prometheus::{IntGaugeVec, Opts, Registry};

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short git commit the binaries were built from, or `unknown` (no git, no repository).
pub const COMMIT: &str = env!("DSDN_GIT_COMMIT");

/// The Cargo profile the binaries were built with: `debug` or `release`.
pub const PROFILE: &str = env!("DSDN_BUILD_PROFILE");

/// What `--version` prints after the program name: `0.1.0 (git 1a2b3c4d5, release)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DSDN_GIT_COMMIT"),
    ", ",
    env!("DSDN_BUILD_PROFILE"),
    ")"
);

/// Registers `dsdn_build_info{version, commit, profile} 1` in `registry`.
///
/// # Errors
/// When the family is registered already.
pub fn register(registry: &Registry) -> Result<IntGaugeVec, prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new(
            "dsdn_build_info",
            "Always 1; the labels name the version, git commit and build profile of this dsdnd",
        ),
        &["version", "commit", "profile"],
    )?;
    registry.register(Box::new(info.clone()))?;
    info.with_label_values(&[VERSION, COMMIT, PROFILE]).set(1);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_commit_and_profile() {
        assert!(LONG_VERSION.starts_with(VERSION), "{LONG_VERSION}");
        assert!(
            LONG_VERSION.contains(&format!("git {COMMIT}")),
            "{LONG_VERSION}"
        );
        assert!(
            LONG_VERSION.ends_with(&format!(", {PROFILE})")),
            "{LONG_VERSION}"
        );
        // Tests are built from the repository with the dev or release profile.
        assert!(["debug", "release"].contains(&PROFILE), "{PROFILE}");
        assert!(
            COMMIT == "unknown" || COMMIT.chars().all(|c| c.is_ascii_hexdigit()),
            "{COMMIT}"
        );
    }

    #[test]
    fn build_info_is_exported() {
        let registry = Registry::new();
        register(&registry).expect("register");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        let line = format!(
            "dsdn_build_info{{commit=\"{COMMIT}\",profile=\"{PROFILE}\",version=\"{VERSION}\"}} 1"
        );
        assert!(text.contains(&line), "{text}");
        assert!(register(&registry).is_err(), "registered twice");
    }
}
