//! The SHA-256 fingerprint of a server's TLS certificate, which clients pin.
//!
//! It is the SHA-256 digest of the certificate's DER encoding, the same value
//! `openssl x509 -noout -fingerprint -sha256` prints, so an administrator can
//! check it with standard tools. It is written as 32 upper-case hex pairs
//! separated by colons; parsing also accepts lower case, no colons, and a
//! leading `sha256:`.

use std::fmt;
use std::str::FromStr;

/// The SHA-256 digest of a DER-encoded X.509 certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateFingerprint([u8; 32]);

impl CertificateFingerprint {
    /// The fingerprint of this DER-encoded certificate.
    pub fn of_der(certificate_der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate_der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateFingerprint({self})")
    }
}

/// Why a string is not a certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a SHA-256 certificate fingerprint is 64 hexadecimal digits, optionally in colon-separated \
     pairs (as the server prints it at start)"
)]
pub struct InvalidFingerprint;

impl FromStr for CertificateFingerprint {
    type Err = InvalidFingerprint;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let text = match text.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
            _ => text,
        };
        let hex: Vec<u8> = if text.contains(':') {
            // Colon-separated: every group is exactly one byte.
            let mut digits = Vec::with_capacity(64);
            for pair in text.split(':') {
                if pair.len() != 2 {
                    return Err(InvalidFingerprint);
                }
                digits.extend_from_slice(pair.as_bytes());
            }
            digits
        } else {
            text.as_bytes().to_vec()
        };
        if hex.len() != 64 {
            return Err(InvalidFingerprint);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Ok(Self(bytes))
    }
}

fn hex_value(digit: u8) -> Result<u8, InvalidFingerprint> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(InvalidFingerprint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_sha256_of_the_der_bytes() {
        // SHA-256("abc") from FIPS 180-2.
        let fingerprint = CertificateFingerprint::of_der(b"abc");
        assert_eq!(
            fingerprint.to_string(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn display_round_trips_and_other_spellings_parse() {
        let fingerprint = CertificateFingerprint::of_der(b"certificate");
        let shown = fingerprint.to_string();
        assert_eq!(
            shown.parse::<CertificateFingerprint>().unwrap(),
            fingerprint
        );
        let bare = shown.replace(':', "").to_lowercase();
        assert_eq!(bare.parse::<CertificateFingerprint>().unwrap(), fingerprint);
        let prefixed = format!("SHA256:{shown}");
        assert_eq!(
            prefixed.parse::<CertificateFingerprint>().unwrap(),
            fingerprint
        );
    }

    #[test]
    fn malformed_fingerprints_are_refused() {
        let shown = CertificateFingerprint::of_der(b"x").to_string();
        for bad in [
            "",
            "abc",
            &shown[..shown.len() - 3],
            &format!("{shown}:00"),
            &shown
                .replacen("A", "G", 1)
                .replacen(|c: char| c.is_ascii_digit(), "G", 1),
            &shown.replacen(':', "", 1),
            &"é".repeat(32),
        ] {
            assert!(
                bad.parse::<CertificateFingerprint>().is_err(),
                "{bad:?} parsed"
            );
        }
    }
}
