//! Wire types of the MLS delivery service: key packages now; threads, their
//! ordered logs and welcomes build on them. Every MLS object is opaque to
//! the server and travels as unpadded base64url.

use serde::{Deserialize, Serialize};

/// `POST` uploads this device's packages; `GET` counts what is left.
pub const KEY_PACKAGES_PATH: &str = "/v1/key-packages";
/// `POST`: claim one package for each active device of a user.
pub const CLAIM_PATH: &str = "/v1/key-packages/claim";
/// The largest key package accepted, in bytes (an Ed25519/X25519
/// KeyPackage is a few hundred).
pub const MAX_KEY_PACKAGE_BYTES: usize = 4096;
/// The most packages one upload may carry.
pub const MAX_UPLOAD: usize = 100;
/// The most unclaimed ordinary packages a device may hold.
pub const MAX_UNCLAIMED: u32 = 500;

/// Opaque bytes, as unpadded base64url on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Blob(#[serde(with = "crate::b64")] pub Vec<u8>);

/// `POST /v1/key-packages`: packages of the signed-in device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPackageUpload {
    /// Ordinary packages, each handed out once.
    pub packages: Vec<Blob>,
    /// A last-resort package, handed out when no ordinary one is left; it
    /// replaces the device's previous one.
    #[serde(default)]
    pub last_resort: Option<Blob>,
}

/// What the signed-in device has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPackageCount {
    /// Unclaimed ordinary packages.
    pub available: u32,
    /// Whether a last-resort package is on file.
    pub last_resort: bool,
}

/// `POST /v1/key-packages/claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPackageClaim {
    /// Whose devices to claim packages for.
    pub user_id: String,
}

/// One claimed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimedKeyPackage {
    /// The device it belongs to.
    pub device_id: String,
    /// The KeyPackage.
    pub key_package: Blob,
    /// Whether it is the device's last-resort package (handed out before,
    /// and again later).
    pub last_resort: bool,
}

/// The answer to a claim: a package for each of the user's active devices
/// that has one (the caller's own device excepted), and the devices that
/// have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimedKeyPackages {
    /// One per device.
    pub packages: Vec<ClaimedKeyPackage>,
    /// Active devices with no package at all; they cannot be added until
    /// they upload some.
    pub without_packages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_base64url_and_strict() {
        let upload = KeyPackageUpload {
            packages: vec![Blob(vec![0xfb, 0xff])],
            last_resort: None,
        };
        let text = serde_json::to_string(&upload).unwrap();
        assert_eq!(text, r#"{"packages":["-_8"],"last_resort":null}"#);
        assert_eq!(
            crate::json::decode::<KeyPackageUpload>(br#"{"packages":["-_8"]}"#).unwrap(),
            upload
        );
        assert!(crate::json::decode::<KeyPackageUpload>(br#"{"packages":["+/8="]}"#).is_err());
    }
}
