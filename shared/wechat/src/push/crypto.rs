//! The signatures and the encryption of WeChat's server pushes
//! (`../shared/wechat-api.md`, "Server push").
//!
//! - A signature is the hex `sha1` of its parts (the app's `Token`, the
//!   timestamp, the nonce, and in safe mode the `Encrypt` value) sorted
//!   and concatenated; it is compared in constant time.
//! - Safe mode is AES-256-CBC with the key `base64(EncodingAESKey + "=")`
//!   (32 bytes), the IV its first 16 bytes, PKCS#7 padding to a 32-byte
//!   block, over `16 random bytes | u32 big-endian length | message |
//!   appid`.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The padding block of WeChat's PKCS#7 (not AES's 16).
const PAD_BLOCK: usize = 32;

/// Base64 that accepts an `EncodingAESKey`'s last character whatever its
/// low bits (WeChat's keys are 43 arbitrary alphanumerics).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why a push could not be opened. Never holds the key or the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("an EncodingAESKey is 43 base64 characters")]
    BadKey,
    #[error("the Encrypt value is not base64 of whole AES blocks")]
    NotCiphertext,
    #[error("the decrypted message is malformed (padding or length)")]
    Malformed,
    #[error("the message was encrypted for another app")]
    OtherApp,
}

/// The hex `sha1` signature of `parts` as WeChat computes it.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let digest = Sha1::digest(sorted.concat().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is the signature of `parts` (constant time, any case).
pub fn signature_matches(given: &str, parts: &[&str]) -> bool {
    let expected = signature(parts);
    let given = given.to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// An app's message key, from its 43-character `EncodingAESKey`.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(REDACTED)")
    }
}

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

impl AesKey {
    /// The key of an `EncodingAESKey`.
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        bytes.try_into().map(Self).map_err(|_| CryptoError::BadKey)
    }

    fn iv(&self) -> [u8; 16] {
        self.0[..16].try_into().expect("32 bytes")
    }

    /// The message of an `Encrypt` value sent to `app_id`.
    pub fn decrypt(&self, encrypt: &str, app_id: &str) -> Result<Vec<u8>, CryptoError> {
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::NotCiphertext)?;
        if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
            return Err(CryptoError::NotCiphertext);
        }
        let plain = Decryptor::new(&self.0.into(), &self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::NotCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::Malformed)?);
        if !(1..=PAD_BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| usize::from(b) != pad)
        {
            return Err(CryptoError::Malformed);
        }
        let body = &plain[..plain.len() - pad];
        let len_bytes: [u8; 4] = body
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .ok_or(CryptoError::Malformed)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let message = body.get(20..20 + len).ok_or(CryptoError::Malformed)?;
        let from_app = &body[20 + len..];
        if from_app != app_id.as_bytes() {
            return Err(CryptoError::OtherApp);
        }
        Ok(message.to_vec())
    }

    /// The `Encrypt` value of `message` for `app_id`, with `random` as its
    /// first 16 bytes (the sandbox pushes with this; answers may be
    /// encrypted too).
    pub fn encrypt(&self, message: &[u8], app_id: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + message.len() + app_id.len() + PAD_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(app_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let cipher = Encryptor::new(&self.0.into(), &self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .expect("whole blocks");
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        // sha1("1409659813" + "263014780" + "abc") — sorted: digits before letters.
        let s = signature(&["abc", "1409659813", "263014780"]);
        assert_eq!(s.len(), 40);
        assert_eq!(s, signature(&["263014780", "abc", "1409659813"]));
        assert!(signature_matches(
            &s.to_uppercase(),
            &["abc", "1409659813", "263014780"]
        ));
        assert!(!signature_matches(&s, &["abd", "1409659813", "263014780"]));
        assert!(!signature_matches("", &["abc"]));
    }

    #[test]
    fn a_message_comes_back_for_its_app_only() {
        let key = AesKey::from_encoding_aes_key(KEY).unwrap();
        for message in ["", "x", "<xml><A>1</A></xml>", &"长".repeat(100)] {
            let sealed = key.encrypt(message.as_bytes(), "wx_app", [7; 16]);
            assert_eq!(key.decrypt(&sealed, "wx_app").unwrap(), message.as_bytes());
            assert_eq!(key.decrypt(&sealed, "wx_other"), Err(CryptoError::OtherApp));
        }
        let other = AesKey::from_encoding_aes_key(&KEY.replace('a', "b")).unwrap();
        let sealed = key.encrypt(b"hello", "wx_app", [1; 16]);
        assert!(other.decrypt(&sealed, "wx_app").is_err());
        assert_eq!(
            key.decrypt("not base64!", "wx_app"),
            Err(CryptoError::NotCiphertext)
        );
        assert_eq!(
            key.decrypt("AAAA", "wx_app"),
            Err(CryptoError::NotCiphertext)
        );
        assert_eq!(
            AesKey::from_encoding_aes_key("short").unwrap_err(),
            CryptoError::BadKey
        );
        assert!(!format!("{key:?}").contains(KEY));
    }

    #[test]
    fn a_tampered_ciphertext_is_refused() {
        let key = AesKey::from_encoding_aes_key(KEY).unwrap();
        let sealed = key.encrypt(b"<xml>receipt</xml>", "wx_app", [3; 16]);
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x55;
        let tampered = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(key.decrypt(&tampered, "wx_app").is_err());
    }
}
