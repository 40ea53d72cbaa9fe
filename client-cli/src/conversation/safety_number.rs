//! `curbside safety-number`: a number two clinicians read to each other to
//! check that each sees the same device keys.

use crate::error::CliError;
use crate::people;
use crate::session::Session;
use crate::show::printable;

/// `curbside safety-number USER`: a number both clinicians can read to
/// each other; it matches when each side sees the same device keys.
pub async fn safety_number(session: &mut Session, user: &str) -> Result<String, CliError> {
    session
        .call(async |client| client.key_package_count().await)
        .await?;
    let other = people::resolve(&session.client, user).await?;
    let me = people::resolve(&session.client, &session.contents.user_id.clone()).await?;
    let mut keys: Vec<(String, String, Vec<u8>)> = [&other, &me]
        .into_iter()
        .flat_map(|entry| {
            entry.devices.iter().map(|device| {
                (
                    entry.user_id.clone(),
                    device.device_id.clone(),
                    device.public_key.clone(),
                )
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"curbside safety number v1\n");
    for (user, device, key) in &keys {
        context.update(user.as_bytes());
        context.update(device.as_bytes());
        context.update(key);
    }
    let digest = context.finish();
    let groups: Vec<String> = digest
        .as_ref()
        .chunks(4)
        .take(6)
        .map(|chunk| {
            let value = chunk
                .iter()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte));
            format!("{:05}", value % 100_000)
        })
        .collect();
    Ok(format!(
        "Safety number with {}:\n  {}\nRead it to each other; if it differs, do not use the thread and tell your administrator.",
        printable(&other.display_name),
        groups.join(" ")
    ))
}
