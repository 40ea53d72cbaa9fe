//! The server under load: the real `curbside-server` binary, started on a
//! fresh data directory and a fresh database, and the clinicians, devices
//! and MLS threads a scenario needs, provisioned through the real API.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use curbside_cli::mls::Device;
use curbside_cli::{Client, Trust};
use curbside_proto::CertificateFingerprint;
use curbside_proto::identity::{EnrollRequest, NewUser, Role};
use curbside_proto::threads::{Blob, KeyPackageUpload, NewThread};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sqlx::Connection;

use crate::Result;

/// Where the server keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A SQLite file in the data directory.
    Sqlite,
    /// A database made for the run on this PostgreSQL server, dropped after.
    Postgres(String),
}

impl Storage {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }
}

/// A running `curbside-server serve`, killed and cleaned up on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub fingerprint: CertificateFingerprint,
    admin_code: String,
    postgres: Option<(String, String)>,
    _data: tempfile::TempDir,
}

/// The server binary beside this one (`cargo build --release` puts both in
/// `target/release`).
pub fn default_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("cannot tell where curbside-bench is")?;
    Ok(dir.join("curbside-server"))
}

impl Server {
    /// Starts `binary` on a fresh data directory and database.
    pub async fn start(binary: &Path, storage: &Storage) -> Result<Self> {
        if !binary.exists() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --release --bin curbside-server \
                 --bin curbside-bench`, or name it with --server-binary",
                binary.display()
            )
            .into());
        }
        let data = tempfile::Builder::new()
            .prefix("curbside-bench-")
            .tempdir()?;
        let data_dir = data.path().join("data");
        std::fs::create_dir(&data_dir)?;
        std::fs::set_permissions(
            &data_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let (database_url, postgres) = match storage {
            Storage::Sqlite => (None, None),
            Storage::Postgres(admin_url) => {
                let name = format!("curbside_bench_{}_{}", std::process::id(), now_ms());
                let mut admin = sqlx::PgConnection::connect(admin_url).await?;
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let mut url = reqwest::Url::parse(admin_url)?;
                url.set_path(&format!("/{name}"));
                (Some(url.to_string()), Some((admin_url.clone(), name)))
            }
        };
        let log = std::fs::File::create(data.path().join("server.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(url) = &database_url {
            command.env("CURBSIDE_DATABASE_URL", url);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no standard output")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut url, mut fingerprint, mut code) = (None, None, None);
        while url.is_none() || fingerprint.is_none() || code.is_none() {
            let line = lines
                .next()
                .ok_or("the server stopped before printing its banner")??;
            if let Some(rest) = line.strip_prefix("Curbside is serving HTTPS on ") {
                url = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("TLS certificate SHA-256 fingerprint: ") {
                fingerprint = Some(rest.trim().parse::<CertificateFingerprint>()?);
            } else if line.starts_with("No users yet") {
                code = lines.next().transpose()?.map(|code| code.trim().to_owned());
            }
        }
        // Nothing more is printed, but the pipe must not fill.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self {
            child,
            url: url.ok_or("no address")?,
            fingerprint: fingerprint.ok_or("no fingerprint")?,
            admin_code: code.ok_or("no first-administrator code")?,
            postgres,
            _data: data,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client connecting from `address`.
    pub fn client(&self, address: IpAddr) -> Result<Client> {
        Ok(Client::new_from(
            &self.url,
            &Trust::Pin(self.fingerprint),
            Some(address),
        )?)
    }

    /// The first administrator, enrolled and signed in.
    pub async fn admin(&self) -> Result<Client> {
        let mut client = self.client(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let key = new_key()?;
        let enrolled = client
            .enroll(&EnrollRequest {
                code: self.admin_code.clone(),
                device_name: "benchmark console".to_owned(),
                public_key: key.1.public_key().as_ref().to_vec(),
                display_name: Some("Benchmark Admin".to_owned()),
            })
            .await?;
        client
            .login_with_key(&enrolled.server_id, &enrolled.device.device_id, &key.1)
            .await?;
        Ok(client)
    }

    /// Resident memory (bytes), from `/proc`.
    pub fn rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or("no VmRSS in /proc")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name (which ends with the last ')').
        let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: u64 = fields.get(11).ok_or("bad /proc stat")?.parse()?;
        let system: u64 = fields.get(12).ok_or("bad /proc stat")?.parse()?;
        Ok(user + system)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin_url, name)) = self.postgres.take() {
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("warning: the benchmark database could not be dropped");
            }
        }
    }
}

pub fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}

fn new_key() -> Result<(Vec<u8>, Ed25519KeyPair)> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| "cannot make a key")?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "cannot read a key")?;
    Ok((pkcs8.as_ref().to_vec(), key))
}

/// The loopback address clinician `i` connects from, so that each looks
/// like a client of its own (the server limits enrollment and sign-in per
/// address). All of 127.0.0.0/8 is loopback on Linux.
pub fn address(i: usize) -> IpAddr {
    let i = u32::try_from(i).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1,
        u8::try_from(i / 250).unwrap_or(255),
        u8::try_from(1 + i % 250).unwrap_or(1),
    ))
}

/// An enrolled, signed-in clinician with one device and its MLS state.
pub struct Clinician {
    pub user_id: String,
    pub device_id: String,
    pub token: String,
    pub client: Client,
    pub mls: Device,
    pub address: IpAddr,
}

/// `n` clinicians, made by `admin` and enrolled through the API.
pub async fn clinicians(server: &Server, admin: &Client, n: usize) -> Result<Vec<Clinician>> {
    let mut made = Vec::with_capacity(n);
    for i in 0..n {
        let user = admin
            .create_user(&NewUser {
                display_name: format!("Dr. Bench {i}"),
                role: Role::Clinician,
                department: "Benchmark".to_owned(),
                licence_number: None,
                user_name: None,
                external_id: None,
            })
            .await?;
        let code = admin.issue_enrollment_code(&user.user_id).await?;
        let address = address(i);
        let mut client = server.client(address)?;
        let (pkcs8, key) = new_key()?;
        let enrolled = client
            .enroll(&EnrollRequest {
                code: code.code.clone(),
                device_name: "benchmark device".to_owned(),
                public_key: key.public_key().as_ref().to_vec(),
                display_name: None,
            })
            .await?;
        let device_id = enrolled.device.device_id;
        let logged_in = client
            .login_with_key(&enrolled.server_id, &device_id, &key)
            .await?;
        let mls = Device::new(&user.user_id, &device_id, &pkcs8, Vec::new())?;
        made.push(Clinician {
            user_id: user.user_id,
            device_id,
            token: logged_in.token,
            client,
            mls,
            address,
        });
    }
    Ok(made)
}

/// A random thread id (an MLS group id).
fn thread_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no randomness")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes an MLS thread of `creator` with `other`, as the real client does:
/// claim a key package, create the group, post it with its welcome, and
/// join from the welcome. Returns the thread id and its epoch.
pub async fn thread(creator: &Clinician, other: &Clinician) -> Result<(String, u64)> {
    let packages = other.mls.key_packages(1, false)?;
    other
        .client
        .upload_key_packages(&KeyPackageUpload {
            packages: packages.into_iter().map(Blob).collect(),
            last_resort: None,
        })
        .await?;
    let claimed = creator.client.claim_key_packages(&other.user_id).await?;
    let package = claimed
        .packages
        .first()
        .ok_or("no key package was handed out")?;
    let (package, _identity) = creator.mls.read_key_package(&package.key_package.0)?;
    let thread_id = thread_id()?;
    let (epoch, welcome) = creator.mls.create(&thread_id, &[package])?;
    creator
        .client
        .create_thread(&NewThread {
            thread_id: thread_id.clone(),
            epoch,
            devices: vec![other.device_id.clone()],
            welcome: Blob(welcome),
        })
        .await?;
    for welcome in other.client.welcomes().await?.welcomes {
        if welcome.thread_id == thread_id {
            other
                .mls
                .join(&welcome.welcome.0, &welcome.thread_id, welcome.epoch)?;
            other.client.ack_welcome(&welcome.welcome_id).await?;
        }
    }
    Ok((thread_id, epoch))
}

/// `count` application messages from `sender` in `thread_id`, each a real
/// MLS ciphertext of about `size` bytes.
pub fn ciphertexts(
    sender: &Clinician,
    thread_id: &str,
    size: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>> {
    // The framing's overhead, measured, so the ciphertexts come out at
    // `size` bytes.
    let (_, probe) = sender.mls.encrypt(thread_id, &vec![b'x'; size])?;
    let overhead = probe.len().saturating_sub(size);
    let plaintext_len = size.saturating_sub(overhead).max(16);
    (0..count)
        .map(|n| {
            let mut plaintext = format!("benchmark message {n} ").into_bytes();
            plaintext.resize(plaintext_len, b'.');
            Ok(sender.mls.encrypt(thread_id, &plaintext)?.1)
        })
        .collect()
}
