//! Crypto-shredding of personal data (DESIGN invariant 3). Each certificate's personal fields
//! (dossier, names, sex, birth date, INS) and its files' paths (which carry names) are stored
//! in the ledger sealed with a key of its own (AES-256-GCM). The keys live outside SQLite, in
//! `ledger.keys`, one 32-byte slot per certificate at a fixed offset, and a purge overwrites
//! the slot with zeros (synced before the ledger commits the purge).
//!
//! Why not rely on SQLite alone: `secure_delete` zeroes what a delete frees, but SQLite moves
//! live cells when it rebuilds a page and leaves their old image in the page's unused space,
//! so a value could still be read from the file long after it was erased. `VACUUM` after
//! every purge would clear that, at a cost growing with everything held. With per-certificate
//! keys, whatever SQLite leaves behind is ciphertext whose key no longer exists, and a purge
//! costs what is purged. Lookups by path go through a keyed hash (`path_key`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;

pub const FILE_NAME: &str = "ledger.keys";
const SLOT: u64 = 32;
/// Keys made ahead of the certificates that will take them (`LedgerTx::key_for_new`).
pub const RESERVE: usize = 64;
/// The format of a sealed value: one version byte, the nonce, the ciphertext and its tag.
const SEALED_V1: u8 = 1;

pub type Key = [u8; 32];

/// The key file.
#[derive(Debug)]
pub struct Keys {
    file: Option<File>,
    path: PathBuf,
}

impl Keys {
    /// Opens (creating, `0600`, when `writable`) the key file of a state directory. Read only
    /// and missing, it holds no key: sealed values then read as absent.
    pub fn open(state_dir: &Path, writable: bool) -> std::io::Result<Keys> {
        let path = state_dir.join(FILE_NAME);
        let file = if writable {
            Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&path)?,
            )
        } else {
            match File::open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        };
        Ok(Keys { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Certificate `id`'s key, if it has one that was not destroyed.
    pub fn get(&self, id: i64) -> std::io::Result<Option<Key>> {
        let (Some(file), Ok(slot)) = (&self.file, u64::try_from(id)) else {
            return Ok(None);
        };
        let mut key = [0u8; 32];
        match file.read_exact_at(&mut key, slot * SLOT) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok((key != [0u8; 32]).then_some(key))
    }

    /// Of the `n` slots after `id`, those holding no key (never written, or destroyed).
    pub fn vacant_after(&self, id: i64, n: usize) -> std::io::Result<Vec<i64>> {
        let (Some(file), Ok(first)) = (&self.file, u64::try_from(id + 1)) else {
            return Ok(Vec::new());
        };
        let mut block = vec![0u8; n * SLOT as usize];
        let mut read = 0;
        while read < block.len() {
            match file.read_at(&mut block[read..], first * SLOT + read as u64)? {
                0 => break,
                r => read += r,
            }
        }
        Ok(block
            .chunks(SLOT as usize)
            .zip(id + 1..)
            .filter(|(slot, _)| slot.iter().all(|&b| b == 0))
            .map(|(_, i)| i)
            .collect())
    }

    /// Writes keys (a zero key destroys one) and syncs them.
    pub fn put(&self, writes: &[(i64, Key)]) -> std::io::Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let file = self.file.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "opened read only")
        })?;
        for (id, key) in writes {
            let slot = u64::try_from(*id).map_err(std::io::Error::other)?;
            file.write_all_at(key, slot * SLOT)?;
        }
        file.sync_data()
    }
}

/// A new random key.
pub fn new_key() -> Key {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system's random source");
    key
}

/// Seals `plain` with `key`.
pub fn seal(key: &Key, plain: &str) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system's random source");
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let mut data = plain.as_bytes().to_vec();
    sealing
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .expect("sealing in memory");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&data);
    out
}

/// Opens a sealed value; `None` without its key, or when it is not one.
pub fn open(key: Option<&Key>, sealed: &[u8]) -> Option<String> {
    let key = key?;
    let (&version, rest) = sealed.split_first()?;
    if version != SEALED_V1 || rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, data) = rest.split_at(NONCE_LEN);
    let opening = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let mut data = data.to_vec();
    let plain = opening
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).ok()?,
            Aad::empty(),
            &mut data,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The keyed hash under which a path is looked up (the installation's secret; a path is
/// never stored in clear).
pub fn path_key(secret: &[u8], path: &Path) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"copy path\0");
    mac.update(path.as_os_str().as_encoded_bytes());
    crate::core::audit::hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_a_destroyed_key_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path(), true).unwrap();
        let (a, b) = (new_key(), new_key());
        keys.put(&[(3, a), (7, b)]).unwrap();
        assert_eq!(keys.get(3).unwrap(), Some(a));
        assert_eq!(keys.get(5).unwrap(), None);
        assert_eq!(keys.get(99).unwrap(), None);
        let sealed = seal(&a, "MARTIN");
        assert!(!sealed.windows(6).any(|w| w == b"MARTIN"));
        assert_eq!(open(Some(&a), &sealed).as_deref(), Some("MARTIN"));
        assert_eq!(open(Some(&b), &sealed), None);
        keys.put(&[(3, [0; 32])]).unwrap();
        assert_eq!(keys.get(3).unwrap(), None);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(!bytes.windows(32).any(|w| w == a));
        let read_only = Keys::open(dir.path(), false).unwrap();
        assert_eq!(read_only.get(7).unwrap(), Some(b));
        assert!(read_only.put(&[(1, a)]).is_err());
    }
}
