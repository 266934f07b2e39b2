//! The secret vault: secrets sealed with the environment's master key.
//!
//! Connection secrets (passwords, keys) are stored only as sealed blobs. A blob is
//! AES-256-GCM ciphertext under the [`MasterKey`], with a random 96-bit nonce, and is
//! bound to its record: the *context* (e.g. `connection:crm:password`) is authenticated
//! data, so a blob copied to another record does not open.
//!
//! Blob layout (version 1):
//!
//! ```text
//! +---------+-------------+-------------+-----------------------------+
//! | 0x01    | key id (8)  | nonce (12)  | ciphertext + GCM tag (16)   |
//! +---------+-------------+-------------+-----------------------------+
//! ```
//!
//! The version byte and key id are authenticated too. The key id (first 8 bytes of the
//! SHA-256 of the key) tells which master key sealed a blob, so a wrong key is reported
//! as such rather than as damage. Rotating the master key is [`reseal`] of every blob.
//!
//! The master key comes from `LAKECDP_MASTER_KEY` (base64 of 32 bytes) or from the file
//! named by `LAKECDP_MASTER_KEY_FILE`. Its bytes are wiped from memory when the
//! [`MasterKey`] is dropped; no `Debug` or error ever prints them. (The AES key schedule
//! inside `ring` is not wiped by this crate.)

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lakecdp_core::Secret;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "LAKECDP_MASTER_KEY";
/// The variable naming a file that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_FILE_ENV: &str = "LAKECDP_MASTER_KEY_FILE";

const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const HOW_TO_MAKE: &str = "make one with `head -c 32 /dev/urandom | base64`";

/// Refuses a master key file that its group or others may read or write (on unix):
/// whoever can read it opens every secret, and whoever can write it can swap the key.
#[cfg(unix)]
fn check_key_file_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            Error::MasterKey(format!(
                "the master key file {} (from {MASTER_KEY_FILE_ENV}) cannot be read: {e}",
                path.display()
            ))
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::MasterKey(format!(
            "the master key file {} (from {MASTER_KEY_FILE_ENV}) can be read or written by its group or others (mode {:03o}); make it private to its owner with `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_file_mode(_path: &Path) -> Result<()> {
    Ok(())
}

/// The id of a master key: the first 8 bytes of its SHA-256, shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The 256-bit key that seals every secret of an environment.
///
/// Its `Debug` shows the key id only; the bytes are wiped on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| Error::MasterKey("the system random generator failed".into()))?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes.as_ref());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Self {
            bytes,
            id: KeyId(id),
        }
    }

    /// A key from its base64 text (surrounding whitespace ignored). `source` names
    /// where the text came from in errors; the text itself is never shown.
    pub fn from_base64(text: &str, source: &str) -> Result<Self> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            Error::MasterKey(format!(
                "the master key in {source} is not valid base64; {HOW_TO_MAKE}"
            ))
        })?);
        if decoded.len() != KEY_LEN {
            return Err(Error::MasterKey(format!(
                "the master key in {source} is {} bytes long, it must be {KEY_LEN} bytes (base64 of 32 random bytes); {HOW_TO_MAKE}",
                decoded.len()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        Ok(Self::from_bytes(bytes))
    }

    /// The key from `LAKECDP_MASTER_KEY` or, if that is unset, from the file named by
    /// `LAKECDP_MASTER_KEY_FILE`.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`MasterKey::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if let Some(text) = lookup(MASTER_KEY_ENV).filter(|v| !v.trim().is_empty()) {
            let text = Zeroizing::new(text);
            return Self::from_base64(&text, MASTER_KEY_ENV);
        }
        if let Some(file) = lookup(MASTER_KEY_FILE_ENV).filter(|v| !v.trim().is_empty()) {
            let path = Path::new(file.trim());
            check_key_file_mode(path)?;
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                Error::MasterKey(format!(
                    "the master key file {} (from {MASTER_KEY_FILE_ENV}) cannot be read: {e}",
                    path.display()
                ))
            })?);
            return Self::from_base64(
                &text,
                &format!("{} (from {MASTER_KEY_FILE_ENV})", path.display()),
            );
        }
        Err(Error::MasterKey(format!(
            "no master key: set {MASTER_KEY_ENV} to the base64 of 32 random bytes, or {MASTER_KEY_FILE_ENV} to a file that holds it; {HOW_TO_MAKE}"
        )))
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as base64, to store it somewhere safe after [`MasterKey::generate`].
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.bytes.as_ref()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Seals and opens secrets with one master key.
pub struct Vault {
    key: LessSafeKey,
    id: KeyId,
    rng: SystemRandom,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

fn aad(id: &KeyId, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + KEY_ID_LEN + context.len());
    aad.push(VERSION);
    aad.extend_from_slice(&id.0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

impl Vault {
    /// A vault sealing with `key` (consumed: its bytes are wiped when dropped here).
    pub fn new(key: MasterKey) -> Result<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.bytes.as_ref())
            .map_err(|_| Error::MasterKey("the master key was rejected by AES-256-GCM".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            id: key.id,
            rng: SystemRandom::new(),
        })
    }

    /// The id of the vault's master key.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Seal `secret` for the record `context`.
    pub fn seal(&self, context: &str, secret: &Secret) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::MasterKey("the system random generator failed".into()))?;
        let plain = secret.expose().as_bytes();
        let mut blob = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        blob.push(VERSION);
        blob.extend_from_slice(&self.id.0);
        blob.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plain.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.id, context)),
                &mut *body,
            )
            .map_err(|_| Error::Sealed {
                context: context.into(),
                reason: "encryption failed".into(),
            })?;
        blob.extend_from_slice(&body);
        Ok(blob)
    }

    /// Open a blob sealed for the record `context`.
    pub fn open(&self, context: &str, blob: &[u8]) -> Result<Secret> {
        let fail = |reason: String| Error::Sealed {
            context: context.into(),
            reason,
        };
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(fail(format!(
                "the blob is {} bytes long, shorter than any sealed value",
                blob.len()
            )));
        }
        if blob[0] != VERSION {
            return Err(fail(format!(
                "unknown blob version {} (this build reads version {VERSION})",
                blob[0]
            )));
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&blob[1..1 + KEY_ID_LEN]);
        let id = KeyId(id);
        if id != self.id {
            return Err(fail(format!(
                "sealed with key {id}, the master key is {}",
                self.id
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1 + KEY_ID_LEN..HEADER_LEN]);
        let mut body = Zeroizing::new(blob[HEADER_LEN..].to_vec());
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&id, context)),
                &mut body,
            )
            .map_err(|_| fail("the blob is damaged or was sealed for another record".into()))?;
        let text = std::str::from_utf8(plain)
            .map_err(|_| fail("the sealed value is not UTF-8 text".into()))?;
        Ok(Secret::new(text))
    }
}

/// Re-seal a blob from the `old` master key under the `new` one (key rotation).
pub fn reseal(old: &Vault, new: &Vault, context: &str, blob: &[u8]) -> Result<Vec<u8>> {
    let secret = old.open(context, blob)?;
    new.seal(context, &secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::new(MasterKey::generate().unwrap()).unwrap()
    }

    const CTX: &str = "connection:crm:password";

    #[test]
    fn seals_and_opens() {
        let v = vault();
        let blob = v.seal(CTX, &Secret::new("pä$$word")).unwrap();
        assert_eq!(blob[0], VERSION);
        assert_eq!(&blob[1..9], v.key_id().as_bytes());
        assert_eq!(blob.len(), HEADER_LEN + "pä$$word".len() + TAG_LEN);
        assert!(!blob.windows(4).any(|w| w == b"word"));
        assert_eq!(v.open(CTX, &blob).unwrap().expose(), "pä$$word");
        // a fresh nonce each time
        assert_ne!(blob, v.seal(CTX, &Secret::new("pä$$word")).unwrap());
        // empty secrets are secrets too
        let empty = v.seal(CTX, &Secret::new("")).unwrap();
        assert_eq!(v.open(CTX, &empty).unwrap().expose(), "");
    }

    #[test]
    fn a_wrong_key_names_both_key_ids() {
        let a = vault();
        let b = vault();
        let blob = a.seal(CTX, &Secret::new("s3cret")).unwrap();
        let err = b.open(CTX, &blob).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "sealed with key {}, the master key is {}",
                a.key_id(),
                b.key_id()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_blob_does_not_open_for_another_record() {
        let v = vault();
        let blob = v.seal(CTX, &Secret::new("s3cret")).unwrap();
        let err = v.open("connection:other:password", &blob).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("another record"), "{msg}");
        assert!(!msg.contains("s3cret"));
    }

    #[test]
    fn a_tampered_blob_is_refused_without_showing_its_bytes() {
        let v = vault();
        let blob = v.seal(CTX, &Secret::new("s3cret")).unwrap();
        for i in [HEADER_LEN - 1, HEADER_LEN, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let msg = v.open(CTX, &bad).unwrap_err().to_string();
            assert!(msg.contains("damaged"), "{msg}");
            assert!(!msg.contains(&hex::encode(&blob[HEADER_LEN..])));
        }
        let mut bad = blob.clone();
        bad[0] = 9;
        assert!(v
            .open(CTX, &bad)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        assert!(v
            .open(CTX, &blob[..10])
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }

    #[test]
    fn reseal_moves_a_blob_to_a_new_key() {
        let old = vault();
        let new = vault();
        let blob = old.seal(CTX, &Secret::new("rotate me")).unwrap();
        let moved = reseal(&old, &new, CTX, &blob).unwrap();
        assert_eq!(new.open(CTX, &moved).unwrap().expose(), "rotate me");
        assert!(old.open(CTX, &moved).is_err());
        assert!(reseal(&old, &new, "connection:x:password", &blob).is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = MasterKey::generate().unwrap();
        let b64 = key.to_base64();
        let raw = STANDARD.decode(b64.expose()).unwrap();
        let id = key.id();
        let shown = format!("{key:?}");
        assert!(shown.contains(&id.to_string()), "{shown}");
        assert!(!shown.contains(b64.expose()));
        assert!(!shown.contains(&hex::encode(&raw)));
        assert!(!shown.contains(&format!("{:?}", raw)));
        let v = Vault::new(key).unwrap();
        let shown = format!("{v:?}");
        assert!(!shown.contains(b64.expose()));
        assert!(!shown.contains(&hex::encode(&raw)));
        assert!(shown.contains(&id.to_string()));
    }

    #[test]
    fn key_ids_are_the_first_bytes_of_the_sha256() {
        let b64 = STANDARD.encode([7u8; 32]);
        let key = MasterKey::from_base64(&b64, "test").unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &[7u8; 32]);
        assert_eq!(key.id().to_string(), hex::encode(&digest.as_ref()[..8]));
        assert_eq!(key.id().to_string().len(), 16);
    }

    #[test]
    fn from_env_explains_how_to_make_a_key() {
        let err = MasterKey::from_lookup(|_| None).unwrap_err().to_string();
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
        assert!(err.contains(MASTER_KEY_FILE_ENV), "{err}");
        assert!(err.contains("head -c 32 /dev/urandom | base64"), "{err}");
    }

    #[test]
    fn from_env_rejects_a_short_key_without_echoing_it() {
        let short = STANDARD.encode(b"sixteen byte key");
        let err = MasterKey::from_lookup(|n| (n == MASTER_KEY_ENV).then(|| short.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("16 bytes long, it must be 32 bytes"), "{err}");
        assert!(!err.contains(&short));
        let err = MasterKey::from_lookup(|n| (n == MASTER_KEY_ENV).then(|| "not base64!".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid base64"), "{err}");
        assert!(!err.contains("not base64!"));
    }

    #[test]
    fn from_env_reads_the_key_file() {
        let key = MasterKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, format!("{}\n", key.to_base64().expose())).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let p = path.display().to_string();
        let loaded =
            MasterKey::from_lookup(|n| (n == MASTER_KEY_FILE_ENV).then(|| p.clone())).unwrap();
        assert_eq!(loaded.id(), key.id());
        // the variable wins over the file
        let other = MasterKey::generate().unwrap();
        let b64 = other.to_base64().expose().to_string();
        let loaded = MasterKey::from_lookup(|n| match n {
            MASTER_KEY_ENV => Some(b64.clone()),
            _ => Some(p.clone()),
        })
        .unwrap();
        assert_eq!(loaded.id(), other.id());
        let missing = dir.path().join("nope").display().to_string();
        let err = MasterKey::from_lookup(|n| (n == MASTER_KEY_FILE_ENV).then(|| missing.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be read"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_or_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let key = MasterKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, key.to_base64().expose()).unwrap();
        let p = path.display().to_string();
        let load = || MasterKey::from_lookup(|n| (n == MASTER_KEY_FILE_ENV).then(|| p.clone()));
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load().unwrap_err().to_string();
            assert!(
                err.contains(&format!("master key file {p}"))
                    && err.contains(&format!("mode {mode:03o}"))
                    && err.contains(&format!("`chmod 600 {p}`")),
                "{err}"
            );
            assert!(!err.contains(key.to_base64().expose()));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(load().unwrap().id(), key.id());
        }
    }
}
