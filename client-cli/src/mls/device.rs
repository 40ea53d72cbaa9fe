//! One device's MLS state: its signing key (the enrolled Ed25519 key),
//! OpenMLS's key-value store (saved to and restored from the profile, or
//! copied to undo a step), its key packages, and what it can read of a
//! thread's group.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::error::{MlsError, protocol};
use super::identity::{Identity, identity_of};

/// The one ciphersuite Curbside uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// OpenMLS's crypto (RustCrypto) and a key-value store this module can save
/// and restore.
#[derive(Default)]
pub(super) struct Provider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

/// The device's state at one moment (private keys included: never shown).
pub struct Snapshot(std::collections::HashMap<Vec<u8>, Vec<u8>>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} values)", self.0.len())
    }
}

/// Signs with the device's enrolled Ed25519 key (ring).
pub(super) struct DeviceSigner(Ed25519KeyPair);

impl Signer for DeviceSigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).as_ref().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// One device's MLS state.
pub struct Device {
    pub(super) provider: Provider,
    pub(super) signer: DeviceSigner,
    pub(super) credential: CredentialWithKey,
    user_id: String,
    device_id: String,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// This device, from its PKCS#8 key and its saved state (empty at
    /// first).
    pub fn new(
        user_id: &str,
        device_id: &str,
        key_pkcs8: &[u8],
        state: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Self, MlsError> {
        let key = Ed25519KeyPair::from_pkcs8(key_pkcs8).map_err(|_| MlsError::BadCredential)?;
        let public_key = key.public_key().as_ref().to_vec();
        let provider = Provider::default();
        if let Ok(mut values) = provider.storage.values.write() {
            values.extend(state);
        }
        let credential = BasicCredential::new(format!("{user_id}:{device_id}").into_bytes());
        Ok(Self {
            provider,
            signer: DeviceSigner(key),
            credential: CredentialWithKey {
                credential: credential.into(),
                signature_key: public_key.into(),
            },
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
        })
    }

    /// The state to save (OpenMLS's whole store: keys and groups).
    pub fn state(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.provider
            .storage
            .values
            .read()
            .map(|values| {
                values
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `n` fresh key packages (serialized), or one last-resort package.
    pub fn key_packages(&self, n: usize, last_resort: bool) -> Result<Vec<Vec<u8>>, MlsError> {
        (0..n)
            .map(|_| {
                let mut builder = KeyPackage::builder();
                if last_resort {
                    builder = builder.mark_as_last_resort();
                }
                let bundle = builder
                    .build(
                        CIPHERSUITE,
                        &self.provider,
                        &self.signer,
                        self.credential.clone(),
                    )
                    .map_err(|e| protocol("key package creation")(&e))?;
                bundle
                    .key_package()
                    .tls_serialize_detached()
                    .map_err(|e| protocol("key package encoding")(&e))
            })
            .collect()
    }

    /// Reads a claimed key package, checking its signature; returns it and
    /// the identity it claims (to check against the directory).
    pub fn read_key_package(&self, bytes: &[u8]) -> Result<(KeyPackage, Identity), MlsError> {
        let package = KeyPackageIn::tls_deserialize_exact(bytes)
            .map_err(|_| MlsError::Malformed {
                what: "key package",
            })?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| protocol("key package validation")(&e))?;
        let leaf = package.leaf_node();
        let identity = identity_of(leaf.credential(), leaf.signature_key().as_slice())?;
        Ok((package, identity))
    }

    pub(super) fn group(&self, thread_id: &str) -> Result<MlsGroup, MlsError> {
        let group_id = GroupId::from_slice(&thread_bytes(thread_id)?);
        MlsGroup::load(self.provider.storage(), &group_id)
            .map_err(|e| protocol("loading the group")(&e))?
            .ok_or_else(|| MlsError::NotJoined(thread_id.to_owned()))
    }

    /// A copy of everything the device holds, to put back with
    /// [`Device::restore`] if a step fails or is not accepted.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(
            self.provider
                .storage
                .values
                .read()
                .map(|values| values.clone())
                .unwrap_or_default(),
        )
    }

    /// Puts back what [`Device::snapshot`] copied.
    pub fn restore(&self, snapshot: Snapshot) {
        if let Ok(mut values) = self.provider.storage.values.write() {
            *values = snapshot.0;
        }
    }

    /// The group's current epoch.
    pub fn epoch(&self, thread_id: &str) -> Result<u64, MlsError> {
        Ok(self.group(thread_id)?.epoch().as_u64())
    }

    /// The current members' identities (to check against the directory).
    pub fn members(&self, thread_id: &str) -> Result<Vec<Identity>, MlsError> {
        self.group(thread_id)?
            .members()
            .map(|member| identity_of(&member.credential, &member.signature_key))
            .collect()
    }

    /// Encrypts `plaintext` for the thread; returns the epoch and message.
    pub fn encrypt(&self, thread_id: &str, plaintext: &[u8]) -> Result<(u64, Vec<u8>), MlsError> {
        let mut group = self.group(thread_id)?;
        let message = group
            .create_message(&self.provider, &self.signer, plaintext)
            .map_err(|e| protocol("encryption")(&e))?;
        let bytes = message
            .tls_serialize_detached()
            .map_err(|e| protocol("message encoding")(&e))?;
        Ok((group.epoch().as_u64(), bytes))
    }

    /// Whether this device has a commit waiting for the server's answer.
    pub fn has_pending_commit(&self, thread_id: &str) -> bool {
        self.group(thread_id)
            .is_ok_and(|group| group.pending_commit().is_some())
    }

    /// Whether this device is still in the thread's group.
    pub fn is_member(&self, thread_id: &str) -> bool {
        self.group(thread_id).is_ok_and(|group| group.is_active())
    }
}

/// A thread id's bytes (it is the group id in hex).
pub(super) fn thread_bytes(thread_id: &str) -> Result<Vec<u8>, MlsError> {
    if !curbside_proto::threads::is_thread_id(thread_id) {
        return Err(MlsError::NotJoined(thread_id.to_owned()));
    }
    (0..thread_id.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&thread_id[at..at + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| MlsError::NotJoined(thread_id.to_owned()))
}
