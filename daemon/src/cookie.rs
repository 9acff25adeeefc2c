//! Cookie authentication of the control API, as bitcoind does it.
//!
//! At each start `dsdnd` writes a fresh random token — [`TOKEN_BYTES`] random bytes from the
//! operating system, as 64 lowercase hex characters — to `<data dir>/.cookie` (mode 0600,
//! created with that mode through a temporary file and a rename, so it is never readable by
//! others, not even for an instant) and removes it on a clean shutdown. Every request to the
//! control API must carry `Authorization: Bearer <token>`; whoever can read the data
//! directory can therefore drive the daemon, and nobody else.
//!
//! `dsdn-agent` reads the cookie with [`read_cookie`] (`--data-dir DIR` or `--cookie FILE`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::TryRng;
use subtle::ConstantTimeEq;

/// File name of the cookie inside the data directory.
pub(crate) const COOKIE_FILE: &str = ".cookie";

/// Random bytes in a token (its hex form is twice as long).
pub const TOKEN_BYTES: usize = 32;

/// `<data_dir>/.cookie`.
pub fn cookie_path(data_dir: &Path) -> PathBuf {
    data_dir.join(COOKIE_FILE)
}

/// A fresh token: [`TOKEN_BYTES`] bytes from the operating system's CSPRNG, hex-encoded.
///
/// # Errors
/// When the operating system's random source fails.
pub(crate) fn generate_token() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| io::Error::other(format!("no OS randomness for the API cookie: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Writes a fresh token to `<data_dir>/.cookie` (mode 0600) and returns it.
///
/// The token is written to `<data_dir>/.cookie.tmp` created with mode 0600 (an existing
/// temporary file is replaced), synced, then renamed over the cookie, so readers see either
/// the old cookie or the whole new one. Creates `data_dir` if it is missing.
///
/// # Errors
/// When the directory or file cannot be written, or no randomness is available.
pub fn write_cookie(data_dir: &Path) -> io::Result<String> {
    fs::create_dir_all(data_dir)?;
    let token = generate_token()?;
    let tmp = data_dir.join(format!("{COOKIE_FILE}.tmp"));
    // A stale temporary file may have another mode: never reuse it.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = file
        .write_all(token.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, cookie_path(data_dir))) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(token)
}

/// Reads a cookie file: its content without surrounding whitespace.
///
/// # Errors
/// When the file cannot be read, or [`io::ErrorKind::InvalidData`] when it is empty.
pub fn read_cookie(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the cookie file is empty",
        ));
    }
    Ok(token.to_owned())
}

/// Removes `<data_dir>/.cookie`; a cookie that is already gone is not an error.
///
/// # Errors
/// When the file exists but cannot be removed.
pub fn remove_cookie(data_dir: &Path) -> io::Result<()> {
    match fs::remove_file(cookie_path(data_dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Compares a presented token with the expected one in time independent of where they
/// differ (the length may leak; the token's length is public anyway).
pub(crate) fn token_matches(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header value (scheme matched without
/// regard to case, as RFC 9110 says); `None` for any other scheme or an empty token.
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let token = write_cookie(&data).expect("write");
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let path = cookie_path(&data);
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(read_cookie(&path).expect("read"), token);
        assert!(!data.join(".cookie.tmp").exists());

        // A new start writes a new token over the old one.
        let again = write_cookie(&data).expect("rewrite");
        assert_ne!(again, token);
        assert_eq!(read_cookie(&path).expect("read"), again);

        remove_cookie(&data).expect("remove");
        assert!(!path.exists());
        remove_cookie(&data).expect("removing twice is fine");
        let err = read_cookie(&path).expect_err("gone");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn stale_temp_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join(".cookie.tmp");
        fs::write(&tmp, "old").expect("write");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_cookie(dir.path()).expect("write");
        let mode = fs::metadata(cookie_path(dir.path()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn read_trims_and_rejects_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c");
        fs::write(&path, "  abc\n").expect("write");
        assert_eq!(read_cookie(&path).expect("read"), "abc");
        fs::write(&path, " \n").expect("write");
        let err = read_cookie(&path).expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn header_parsing_and_comparison() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
    }
}
