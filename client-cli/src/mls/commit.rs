//! Changes this device makes to a thread's group: creating it, a commit
//! adding or removing members or renewing its own keys (pending until the
//! server takes it), and joining a group from a welcome.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::OpenMlsProvider;

use super::device::{CIPHERSUITE, Device, thread_bytes};
use super::error::{MlsError, protocol};
use super::identity::identity_of;

/// What a welcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The device joined the thread's group now.
    Now,
    /// It had joined it already, at that epoch.
    Already,
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

impl Device {
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
}
