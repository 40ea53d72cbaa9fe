//! What this device makes of another member's log entry: a message
//! decrypted, or a commit applied only if it does exactly what its sender
//! declared to the server and nothing Curbside clients never do.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;

use super::device::Device;
use super::error::{MlsError, protocol};
use super::identity::{Identity, identity_of};

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

impl Device {
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
}
