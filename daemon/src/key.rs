//! The node key: an Ed25519 secret in `<data-dir>/node.key` (64 hex characters, mode 0600).
//!
//! The libp2p PeerId derived from it is the node id; its public key is what a coordinator
//! publishes as the network's `da_authority`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p::identity::{ed25519, Keypair};

/// File name of the node key inside the data directory.
pub(crate) const KEY_FILE: &str = "node.key";

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the data directory or key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but does not hold 64 hex characters. It is never overwritten:
    /// it is the node's identity.
    #[error("{0}: not a valid node key (expected 64 hex characters); move it away to create a new identity")]
    Invalid(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads the node key from `data_dir`, creating the directory (mode 0700) and a new key
/// (mode 0600) when missing. Returns the keypair and whether it was created now.
///
/// # Errors
/// [`KeyError`] when the directory or file cannot be read or written, or the file is not a
/// valid key.
pub fn load_or_create(data_dir: &Path) -> Result<(Keypair, bool), KeyError> {
    fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let path = data_dir.join(KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mut secret = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut secret)
                .map_err(|_| KeyError::Invalid(path.clone()))?;
            let mode = fs::metadata(&path).map_err(io(&path))?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "node key is readable by other users; chmod 600 it");
            }
            let secret = ed25519::SecretKey::try_from_bytes(secret)
                .map_err(|_| KeyError::Invalid(path.clone()))?;
            Ok((Keypair::from(ed25519::Keypair::from(secret)), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700));
            let kp = ed25519::Keypair::generate();
            let text = format!("{}\n", hex::encode(kp.secret().as_ref()));
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(text.as_bytes()).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            Ok((Keypair::from(kp), true))
        }
        Err(e) => Err(KeyError::Io { path, source: e }),
    }
}

/// The 32-byte Ed25519 public key of `key` (what `da_authority` names).
pub fn public_key_bytes(key: &Keypair) -> Option<[u8; 32]> {
    key.public().try_into_ed25519().ok().map(|p| p.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        let (k1, created) = load_or_create(&data).unwrap();
        assert!(created);
        let (k2, created) = load_or_create(&data).unwrap();
        assert!(!created);
        assert_eq!(k1.public().to_peer_id(), k2.public().to_peer_id());
        let mode = fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(public_key_bytes(&k1).unwrap().len(), 32);
    }

    #[test]
    fn invalid_key_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "not hex").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyError::Invalid(_))
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            "not hex"
        );
    }
}
