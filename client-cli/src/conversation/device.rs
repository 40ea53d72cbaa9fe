//! The device's side of every thread command: its MLS state, loaded from
//! the profile and saved back, and the catch-up each command starts with
//! (key packages topped up, welcomes joined, members checked against the
//! directory).

use curbside_proto::threads::{Blob, KeyPackageUpload};

use crate::error::CliError;
use crate::mls::{Device, Joined};
use crate::people::Names;
use crate::session::Session;
use crate::show::{printable, short};
use crate::store::MlsValue;

/// Top up key packages when fewer than this many are left.
const LOW_WATER: u32 = 10;
/// How many to upload then.
const BATCH: usize = 30;

/// The device's MLS state, loaded from the profile.
pub(super) fn device(session: &Session) -> Result<Device, CliError> {
    let contents = &session.contents;
    Ok(Device::new(
        &contents.user_id,
        &contents.device_id,
        &contents.device_key_pkcs8,
        contents
            .mls_state
            .iter()
            .map(|value| (value.key.clone(), value.value.clone()))
            .collect(),
    )?)
}

/// Saves the device's MLS state into the profile.
pub(super) fn save(session: &mut Session, device: &Device) -> Result<(), CliError> {
    session.contents.mls_state = device
        .state()
        .into_iter()
        .map(|(key, value)| MlsValue { key, value })
        .collect();
    session.save()
}

/// Signs in if needed, joins welcomed threads and tops up key packages.
pub(super) async fn catch_up(session: &mut Session) -> Result<Device, CliError> {
    let count = session
        .call(async |client| client.key_package_count().await)
        .await?;
    let device = device(session)?;
    if count.available < LOW_WATER || !count.last_resort {
        let last_resort = if count.last_resort {
            None
        } else {
            device.key_packages(1, true)?.pop().map(Blob)
        };
        let packages = device.key_packages(BATCH, false)?;
        // Their private keys are kept before the server hands them out.
        save(session, &device)?;
        session
            .client
            .upload_key_packages(&KeyPackageUpload {
                packages: packages.into_iter().map(Blob).collect(),
                last_resort,
            })
            .await?;
    }
    for welcome in session.client.welcomes().await?.welcomes {
        let thread_id = welcome.thread_id.clone();
        let before = device.snapshot();
        let joined = device
            .join(&welcome.welcome.0, &thread_id, welcome.epoch)
            .map_err(CliError::from);
        // Every member's credential must match the directory; a thread
        // whose members do not is left alone, with a warning.
        let checked = match joined {
            Ok(Joined::Now) => check_members(session, &device, &thread_id)
                .await
                .map(|()| true),
            Ok(Joined::Already) => Ok(false),
            Err(error) => Err(error),
        };
        match checked {
            Ok(true) => {
                // Added (again): what was kept of the thread stays, and
                // reading starts after the commit that added this device.
                let state = session.contents.threads.entry(thread_id).or_default();
                state.processed_seq = welcome.joined_seq;
                state.left = None;
                // Kept before the server forgets the welcome.
                save(session, &device)?;
            }
            Ok(false) => {}
            // The directory could not be asked: the welcome stays for the
            // next command, and the others go on.
            Err(CliError::Client(error)) => {
                device.restore(before);
                eprintln!(
                    "curbside: thread {} will be joined later ({})",
                    short(&thread_id),
                    error.brief()
                );
                continue;
            }
            Err(error) => {
                device.restore(before);
                eprintln!(
                    "curbside: not joining thread {}: {error}",
                    printable(&thread_id)
                );
            }
        }
        session.client.ack_welcome(&welcome.welcome_id).await?;
    }
    save(session, &device)?;
    Ok(device)
}

/// Checks every member of `thread_id`'s group against the directory: an
/// active user, that user's enrolled device, and its enrolled key.
pub(super) async fn check_members(
    session: &Session,
    device: &Device,
    thread_id: &str,
) -> Result<(), CliError> {
    let members = device.members(thread_id)?;
    let mut names = Names::default();
    for member in members {
        let own = member.device_id == session.contents.device_id;
        let listed = names
            .entry(&session.client, &member.user_id)
            .await?
            .and_then(|entry| {
                entry
                    .devices
                    .iter()
                    .find(|listed| listed.device_id == member.device_id)
            })
            .map(|listed| listed.public_key.clone());
        match listed {
            Some(key) if key == member.public_key => {}
            Some(_) => return Err(CliError::CredentialMismatch(member.device_id)),
            None if own => {
                if member.user_id != session.contents.user_id
                    || member.public_key != own_public_key(session)?
                {
                    return Err(CliError::CredentialMismatch(member.device_id));
                }
            }
            // Removed, or its user deactivated: still in the group until a
            // member's commit removes it.
            None => eprintln!(
                "curbside: a device of {} in this thread is no longer enrolled; remove them with \
                 `curbside thread remove {} USER`",
                names.of(&session.client, &member.user_id).await?,
                short(thread_id)
            ),
        }
    }
    Ok(())
}

/// This device's enrolled public key.
fn own_public_key(session: &Session) -> Result<Vec<u8>, CliError> {
    use ring::signature::KeyPair;
    let key = ring::signature::Ed25519KeyPair::from_pkcs8(&session.contents.device_key_pkcs8)
        .map_err(|_| CliError::BadKey)?;
    Ok(key.public_key().as_ref().to_vec())
}
