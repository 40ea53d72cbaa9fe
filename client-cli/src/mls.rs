//! The device's side of MLS (RFC 9420, via OpenMLS): key packages, groups
//! (one per thread), commits, welcomes and application messages.
//!
//! The ciphersuite is `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`. A
//! member's credential is a basic credential naming `USER_ID:DEVICE_ID`,
//! and its signature key is the device's own Ed25519 key (the one it
//! enrolled with), so a credential can be checked against the server's
//! directory. OpenMLS keeps its state in a key-value store, which
//! [`Device::state`] hands back for the profile's encrypted store, so each
//! command can run as a separate process.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The one ciphersuite Curbside uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Why an MLS step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlsError {
    /// OpenMLS refused (the message names the step; OpenMLS's own account
    /// is kept for debugging, never shown).
    #[error(
        "the encryption step failed ({step}); run the command again, and if it fails again, \
         tell your administrator"
    )]
    Protocol {
        /// What was being done.
        step: &'static str,
        /// OpenMLS's account of it.
        detail: String,
    },
    /// A welcome to a thread this device is in, at an epoch it has passed.
    #[error("a welcome to thread {0} is older than what this device holds; it was ignored")]
    StaleWelcome(String),
    /// A message or package from elsewhere is not well-formed MLS.
    #[error("a {what} from the server is not a well-formed MLS message")]
    Malformed {
        /// What it should have been.
        what: &'static str,
    },
    /// This device is not in the thread's group.
    #[error("this device has no keys for thread {0}; it may not have joined it yet")]
    NotJoined(String),
    /// A commit does not do what its sender declared to the server.
    #[error(
        "a commit in thread {thread} does not match the membership change declared with it; \
         stop using this thread and tell your administrator"
    )]
    DeclarationMismatch {
        /// The thread.
        thread: String,
    },
    /// A credential names something other than a device identity.
    #[error("a member credential is not a Curbside device identity")]
    BadCredential,
    /// An entry's MLS sender is not the device the server says sent it.
    #[error(
        "a message in thread {thread} was not sent by the device the server names; stop using \
         this thread and tell your administrator"
    )]
    SenderMismatch {
        /// The thread.
        thread: String,
    },
    /// A commit does something Curbside clients never do (an external
    /// join, a change of group settings, a member changing identity).
    #[error(
        "a commit in thread {thread} does something Curbside does not allow ({what}); stop \
         using this thread and tell your administrator"
    )]
    ForbiddenCommit {
        /// The thread.
        thread: String,
        /// What it tried.
        what: &'static str,
    },
}

fn protocol(step: &'static str) -> impl Fn(&dyn std::fmt::Debug) -> MlsError {
    move |error| MlsError::Protocol {
        step,
        detail: format!("{error:?}"),
    }
}

/// OpenMLS's crypto (RustCrypto) and a key-value store this module can save
/// and restore.
#[derive(Default)]
struct Provider {
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

/// What a welcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The device joined the thread's group now.
    Now,
    /// It had joined it already, at that epoch.
    Already,
}

/// The device's state at one moment (private keys included: never shown).
pub struct Snapshot(std::collections::HashMap<Vec<u8>, Vec<u8>>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} values)", self.0.len())
    }
}

/// Signs with the device's enrolled Ed25519 key (ring).
struct DeviceSigner(Ed25519KeyPair);

impl Signer for DeviceSigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).as_ref().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// A member's identity, from its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The key the credential is bound to.
    pub public_key: Vec<u8>,
}

fn identity_of(credential: &Credential, public_key: &[u8]) -> Result<Identity, MlsError> {
    let basic =
        BasicCredential::try_from(credential.clone()).map_err(|_| MlsError::BadCredential)?;
    let text = std::str::from_utf8(basic.identity()).map_err(|_| MlsError::BadCredential)?;
    let (user_id, device_id) = text.split_once(':').ok_or(MlsError::BadCredential)?;
    // Exactly two ids of 32 lower-case hex digits.
    let is_id =
        |id: &str| id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_id(user_id) || !is_id(device_id) {
        return Err(MlsError::BadCredential);
    }
    Ok(Identity {
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        public_key: public_key.to_vec(),
    })
}

/// What processing a log entry produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// A message: its plaintext and sender.
    Message {
        /// The sender.
        sender: Identity,
        /// The plaintext.
        plaintext: Vec<u8>,
    },
    /// A commit was applied; the group is at a new epoch.
    Commit {
        /// Devices it added.
        added: Vec<Identity>,
        /// Devices it removed.
        removed: Vec<Identity>,
    },
}

/// A commit made here, waiting for the server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    /// The epoch it was made in.
    pub epoch: u64,
    /// The MLS commit.
    pub commit: Vec<u8>,
    /// The welcome for added devices, if it adds any.
    pub welcome: Option<Vec<u8>>,
}

/// One device's MLS state.
pub struct Device {
    provider: Provider,
    signer: DeviceSigner,
    credential: CredentialWithKey,
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

    fn group(&self, thread_id: &str) -> Result<MlsGroup, MlsError> {
        let group_id = GroupId::from_slice(&thread_bytes(thread_id)?);
        MlsGroup::load(self.provider.storage(), &group_id)
            .map_err(|e| protocol("loading the group")(&e))?
            .ok_or_else(|| MlsError::NotJoined(thread_id.to_owned()))
    }

    /// Makes a thread's group with these members; returns its epoch and
    /// the welcome for them.
    pub fn create(
        &self,
        thread_id: &str,
        members: &[KeyPackage],
    ) -> Result<(u64, Vec<u8>), MlsError> {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .build();
        let mut group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &config,
            GroupId::from_slice(&thread_bytes(thread_id)?),
            self.credential.clone(),
        )
        .map_err(|e| protocol("group creation")(&e))?;
        let (_commit, welcome, _info) = group
            .add_members(&self.provider, &self.signer, members)
            .map_err(|e| protocol("adding members")(&e))?;
        group
            .merge_pending_commit(&self.provider)
            .map_err(|e| protocol("merging the commit")(&e))?;
        let welcome = welcome
            .tls_serialize_detached()
            .map_err(|e| protocol("welcome encoding")(&e))?;
        Ok((group.epoch().as_u64(), welcome))
    }

    /// A commit adding `members` (with its welcome) or removing the
    /// devices `remove`, at the group's current epoch. Not applied here:
    /// call [`Device::commit_accepted`] once the server took it, or
    /// [`Device::commit_refused`].
    pub fn commit(
        &self,
        thread_id: &str,
        members: &[KeyPackage],
        remove: &[String],
    ) -> Result<PendingCommit, MlsError> {
        let mut group = self.group(thread_id)?;
        let epoch = group.epoch().as_u64();
        let (commit, welcome) = if remove.is_empty() {
            let (commit, welcome, _) = group
                .add_members(&self.provider, &self.signer, members)
                .map_err(|e| protocol("adding members")(&e))?;
            (commit, Some(welcome))
        } else {
            let leaves: Vec<LeafNodeIndex> = group
                .members()
                .filter(|member| {
                    identity_of(&member.credential, &member.signature_key)
                        .is_ok_and(|identity| remove.contains(&identity.device_id))
                })
                .map(|member| member.index)
                .collect();
            let (commit, welcome, _) = group
                .remove_members(&self.provider, &self.signer, &leaves)
                .map_err(|e| protocol("removing members")(&e))?;
            (commit, welcome)
        };
        let commit = commit
            .tls_serialize_detached()
            .map_err(|e| protocol("commit encoding")(&e))?;
        let welcome = welcome
            .map(|welcome| welcome.tls_serialize_detached())
            .transpose()
            .map_err(|e| protocol("welcome encoding")(&e))?;
        Ok(PendingCommit {
            epoch,
            commit,
            welcome,
        })
    }

    /// A commit that only refreshes this device's own keys (no change of
    /// members), at the group's current epoch.
    pub fn update(&self, thread_id: &str) -> Result<PendingCommit, MlsError> {
        let mut group = self.group(thread_id)?;
        let epoch = group.epoch().as_u64();
        let bundle = group
            .self_update(&self.provider, &self.signer, LeafNodeParameters::default())
            .map_err(|e| protocol("updating own keys")(&e))?;
        let commit = bundle
            .commit()
            .tls_serialize_detached()
            .map_err(|e| protocol("commit encoding")(&e))?;
        Ok(PendingCommit {
            epoch,
            commit,
            welcome: None,
        })
    }

    /// The server accepted this device's pending commit: apply it.
    pub fn commit_accepted(&self, thread_id: &str) -> Result<u64, MlsError> {
        let mut group = self.group(thread_id)?;
        group
            .merge_pending_commit(&self.provider)
            .map_err(|e| protocol("merging the commit")(&e))?;
        Ok(group.epoch().as_u64())
    }

    /// The server refused this device's pending commit (another won the
    /// epoch): drop it, to catch up and try again.
    pub fn commit_refused(&self, thread_id: &str) -> Result<(), MlsError> {
        let mut group = self.group(thread_id)?;
        group
            .clear_pending_commit(self.provider.storage())
            .map_err(|e| protocol("dropping the commit")(&e))
    }

    /// Joins thread `thread_id` from a welcome the server says brings the
    /// group to `epoch`. A member removed and added back holds the
    /// thread's old group: it gives way to the new one only if the welcome
    /// names this thread and brings the group to a later epoch than the
    /// one held (the welcome's own epoch, which must also be the server's
    /// word). A welcome to the group and epoch already held was joined
    /// before (its acknowledgement was lost). Any failure leaves the
    /// device's state exactly as it was.
    pub fn join(&self, welcome: &[u8], thread_id: &str, epoch: u64) -> Result<Joined, MlsError> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|_| MlsError::Malformed { what: "welcome" })?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(MlsError::Malformed { what: "welcome" });
        };
        let group_id = GroupId::from_slice(&thread_bytes(thread_id)?);
        let before = self.snapshot();
        let result = self.replace_group(welcome, &group_id, thread_id, epoch);
        if !matches!(result, Ok(Joined::Now)) {
            self.restore(before);
        }
        result
    }

    fn replace_group(
        &self,
        welcome: Welcome,
        group_id: &GroupId,
        thread_id: &str,
        epoch: u64,
    ) -> Result<Joined, MlsError> {
        let held = match MlsGroup::load(self.provider.storage(), group_id) {
            Ok(Some(mut old)) => {
                let held = (old.epoch().as_u64(), old.is_active());
                old.delete(self.provider.storage())
                    .map_err(|e| protocol("forgetting the old group")(&e))?;
                Some(held)
            }
            _ => None,
        };
        let config = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .build();
        let staged = StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)
            .map_err(|e| protocol("reading the welcome")(&e))?;
        let context = staged.group_context();
        if context.group_id() != group_id || context.epoch().as_u64() != epoch {
            return Err(MlsError::Malformed { what: "welcome" });
        }
        match held {
            Some((held, true)) if epoch == held => return Ok(Joined::Already),
            Some((held, _)) if epoch <= held => {
                return Err(MlsError::StaleWelcome(thread_id.to_owned()));
            }
            _ => {}
        }
        staged
            .into_group(&self.provider)
            .map_err(|e| protocol("joining")(&e))?;
        Ok(Joined::Now)
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

    /// Processes one log entry that the server says `sender_device` sent.
    /// A commit must do exactly what `declared` (added and removed
    /// devices) says, and nothing Curbside clients never do.
    pub fn process(
        &self,
        thread_id: &str,
        sender_device: &str,
        body: &[u8],
        declared: Option<(&[String], &[String])>,
    ) -> Result<Processed, MlsError> {
        let mut group = self.group(thread_id)?;
        let message = MlsMessageIn::tls_deserialize_exact(body)
            .map_err(|_| MlsError::Malformed { what: "message" })?;
        let protocol_message = message
            .try_into_protocol_message()
            .map_err(|_| MlsError::Malformed { what: "message" })?;
        let processed = group
            .process_message(&self.provider, protocol_message)
            .map_err(|e| protocol("processing a message")(&e))?;
        let forbidden = |what: &'static str| MlsError::ForbiddenCommit {
            thread: thread_id.to_owned(),
            what,
        };
        let sender = processed.credential().clone();
        let Sender::Member(sender_index) = *processed.sender() else {
            return Err(forbidden("a sender from outside the group"));
        };
        let sender_key = group
            .member_at(sender_index)
            .map(|member| member.signature_key)
            .unwrap_or_default();
        let sender_identity = identity_of(&sender, &sender_key)?;
        if sender_identity.device_id != sender_device {
            return Err(MlsError::SenderMismatch {
                thread: thread_id.to_owned(),
            });
        }
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => Ok(Processed::Message {
                sender: sender_identity,
                plaintext: message.into_bytes(),
            }),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                // Only adds and removes, by reference or inline.
                for queued in staged.queued_proposals() {
                    match queued.proposal() {
                        Proposal::Add(_) | Proposal::Remove(_) => {}
                        _ => return Err(forbidden("a proposal other than add or remove")),
                    }
                }
                // A member refreshing its keys stays who it is.
                if let Some(leaf) = staged.update_path_leaf_node() {
                    let renewed = identity_of(leaf.credential(), leaf.signature_key().as_slice())?;
                    if renewed.user_id != sender_identity.user_id
                        || renewed.device_id != sender_identity.device_id
                        || renewed.public_key != sender_identity.public_key
                    {
                        return Err(forbidden("a member changing its identity or key"));
                    }
                }
                let Some((add, remove)) = declared else {
                    return Err(MlsError::DeclarationMismatch {
                        thread: thread_id.to_owned(),
                    });
                };
                let added: Vec<Identity> = staged
                    .add_proposals()
                    .map(|proposal| {
                        let leaf = proposal.add_proposal().key_package().leaf_node();
                        identity_of(leaf.credential(), leaf.signature_key().as_slice())
                    })
                    .collect::<Result<_, _>>()?;
                let removed: Vec<Identity> = staged
                    .remove_proposals()
                    .map(|proposal| {
                        group
                            .member_at(proposal.remove_proposal().removed())
                            .ok_or(MlsError::BadCredential)
                            .and_then(|member| {
                                identity_of(&member.credential, &member.signature_key)
                            })
                    })
                    .collect::<Result<_, _>>()?;
                let same = |a: &[Identity], b: &[String]| {
                    let mut a: Vec<&str> = a.iter().map(|id| id.device_id.as_str()).collect();
                    let mut b: Vec<&str> = b.iter().map(String::as_str).collect();
                    a.sort_unstable();
                    b.sort_unstable();
                    a == b
                };
                if !same(&added, add) || !same(&removed, remove) {
                    return Err(MlsError::DeclarationMismatch {
                        thread: thread_id.to_owned(),
                    });
                }
                group
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(|e| protocol("merging a commit")(&e))?;
                Ok(Processed::Commit { added, removed })
            }
            _ => Err(MlsError::Malformed {
                what: "thread entry",
            }),
        }
    }

    /// Whether this device is still in the thread's group.
    pub fn is_member(&self, thread_id: &str) -> bool {
        self.group(thread_id).is_ok_and(|group| group.is_active())
    }
}

/// A thread id's bytes (it is the group id in hex).
fn thread_bytes(thread_id: &str) -> Result<Vec<u8>, MlsError> {
    if !curbside_proto::threads::is_thread_id(thread_id) {
        return Err(MlsError::NotJoined(thread_id.to_owned()));
    }
    (0..thread_id.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&thread_id[at..at + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| MlsError::NotJoined(thread_id.to_owned()))
}
