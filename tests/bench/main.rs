//! `curbside-bench`: Curbside's load generator.
//!
//! Each scenario starts the real `curbside-server` binary on a fresh data
//! directory and database (SQLite, or a database made for the run on a
//! PostgreSQL server), provisions clinicians, devices and MLS threads
//! through the real API with the real client, prepares real MLS
//! ciphertexts before the clock starts, and then drives the HTTPS API and
//! the event WebSocket. It prints a summary, can write JSON, and finally
//! verifies the server's audit chain. `docs/benchmarks.md` has the
//! commands and the figures.

mod server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use curbside_cli::Client;
use curbside_proto::audit_review::{ExportFormat, ExportQuery};
use curbside_proto::threads::{Blob, Event, MessageRequest};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use server::{Clinician, Server, Storage};

/// The server's allocator (see its `main.rs`): the load generator shares
/// the machine, so its own cost matters too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

#[derive(Debug, Parser)]
#[command(
    name = "curbside-bench",
    about = "Load generator for the Curbside server: durable send throughput, end-to-end \
             latency, idle connections, and a no-op baseline"
)]
struct Cli {
    /// The server binary [default: curbside-server beside this program].
    #[arg(long, global = true)]
    server_binary: Option<PathBuf>,
    /// Run on a fresh database on this PostgreSQL server (made for the run
    /// and dropped after), e.g. postgres://postgres@127.0.0.1:5432/postgres.
    /// Without it: SQLite in a temporary data directory.
    #[arg(long, global = true)]
    postgres: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Durable, audited messages per second at a fixed concurrency.
    Send(SendArgs),
    /// Send-to-WebSocket-receive latency at a fixed offered rate.
    E2e(E2eArgs),
    /// Server memory with many idle, authenticated WebSockets.
    Connections(ConnectionsArgs),
    /// `/v1/health` (TLS and HTTP only) at a fixed concurrency.
    Baseline(BaselineArgs),
    /// Baseline, send, e2e and connections in turn, with the defaults.
    All,
}

#[derive(Debug, Clone, Args)]
struct SendArgs {
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Two-member threads (the connections are spread over them).
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Ciphertext size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The rate ciphertexts are prepared for (messages/s); past it the
    /// run reuses them, and says so.
    #[arg(long, default_value_t = 10_000)]
    prepare_rate: u64,
}

impl Default for SendArgs {
    fn default() -> Self {
        Self {
            concurrency: 64,
            threads: 64,
            size: 1024,
            seconds: 10,
            warmup: 2,
            prepare_rate: 10_000,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct E2eArgs {
    /// Offered messages per second, across all threads.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Two-member threads; each recipient holds a WebSocket.
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Ciphertext size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

impl Default for E2eArgs {
    fn default() -> Self {
        Self {
            rate: 1000,
            threads: 64,
            size: 1024,
            seconds: 10,
            warmup: 2,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct ConnectionsArgs {
    /// WebSockets to hold open.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Devices (clinicians) the sockets are spread over.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Seconds to hold them idle before measuring again.
    #[arg(long, default_value_t = 15)]
    hold: u64,
}

impl Default for ConnectionsArgs {
    fn default() -> Self {
        Self {
            count: 10_000,
            devices: 100,
            hold: 15,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct BaselineArgs {
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

impl Default for BaselineArgs {
    fn default() -> Self {
        Self {
            concurrency: 64,
            seconds: 10,
            warmup: 2,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("curbside-bench: cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("curbside-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let binary = match &cli.server_binary {
        Some(binary) => binary.clone(),
        None => server::default_binary()?,
    };
    let storage = match &cli.postgres {
        Some(url) => Storage::Postgres(url.clone()),
        None => Storage::Sqlite,
    };
    println!(
        "curbside-bench: server {}, {} database, {} CPU cores",
        binary.display(),
        storage.name(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let results = match &cli.scenario {
        Scenario::Send(args) => vec![send(&binary, &storage, args).await?],
        Scenario::E2e(args) => vec![e2e(&binary, &storage, args).await?],
        Scenario::Connections(args) => vec![connections(&binary, &storage, args).await?],
        Scenario::Baseline(args) => vec![baseline(&binary, &storage, args).await?],
        Scenario::All => {
            let base = baseline(&binary, &storage, &BaselineArgs::default()).await?;
            let mut sent = send(&binary, &storage, &SendArgs::default()).await?;
            let ratio = ratio(&sent, &base);
            sent["ratio_to_baseline"] = json!(ratio);
            println!("send / baseline throughput: {ratio:.3}");
            let e2e = e2e(&binary, &storage, &E2eArgs::default()).await?;
            let connections = connections(&binary, &storage, &ConnectionsArgs::default()).await?;
            vec![base, sent, e2e, connections]
        }
    };
    if let Some(path) = &cli.json {
        let document = json!({
            "database": storage.name(),
            "cpu_cores": std::thread::available_parallelism().map_or(0, usize::from),
            "results": results,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&document)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn ratio(result: &Value, baseline: &Value) -> f64 {
    let rate = |value: &Value| value["per_second"].as_f64().unwrap_or(0.0);
    let base = rate(baseline);
    if base > 0.0 { rate(result) / base } else { 0.0 }
}

/// p50, p99 and max of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    json!({
        "count": samples.len(),
        "p50_ms": round(at(0.50)),
        "p99_ms": round(at(0.99)),
        "max_ms": round(at(1.0)),
    })
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn latency_line(name: &str, latency: &Value) -> String {
    format!(
        "{name}: p50 {} ms, p99 {} ms, max {} ms",
        latency["p50_ms"], latency["p99_ms"], latency["max_ms"]
    )
}

/// Starts the server and signs in its first administrator.
async fn start(binary: &std::path::Path, storage: &Storage) -> Result<(Server, Client)> {
    let server = Server::start(binary, storage).await?;
    let admin = server.admin().await?;
    Ok((server, admin))
}

/// `threads` two-member MLS threads among `2 × threads` new clinicians.
async fn threads(
    server: &Server,
    admin: &Client,
    threads: usize,
) -> Result<(Vec<Clinician>, Vec<(String, u64)>)> {
    let started = Instant::now();
    let people = server::clinicians(server, admin, threads * 2).await?;
    let mut made = Vec::with_capacity(threads);
    for pair in people.chunks(2) {
        if let [creator, other] = pair {
            made.push(server::thread(creator, other).await?);
        }
    }
    println!(
        "provisioned {} clinicians and {} MLS threads through the API in {:.1} s",
        people.len(),
        made.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((people, made))
}

/// Verifies the server's whole audit chain through its export, as
/// `curbside admin audit verify` does.
async fn verify_audit(admin: &Client) -> Result<Value> {
    let key = admin.audit_key().await?;
    let response = admin
        .audit_export(&ExportQuery::whole_log(ExportFormat::Jsonl))
        .await?;
    let verified = curbside_cli::audit::verify_stream(
        admin,
        response,
        curbside_proto::audit::Verifier::new(&key.public_key),
    )
    .await?;
    println!("audit chain: valid up to sequence {}", verified.last);
    Ok(json!({ "valid_through_seq": verified.last }))
}

/// One sending connection: a thread, its two members' sessions on one
/// HTTP connection (they take turns), and their prepared ciphertexts.
struct Lane {
    thread: usize,
    thread_id: String,
    epoch: u64,
    senders: [Client; 2],
    ciphertexts: [Vec<Vec<u8>>; 2],
}

#[derive(Default)]
struct LaneResult {
    latencies: Vec<Duration>,
    measured: u64,
    acknowledged: u64,
    errors: u64,
    first_error: Option<String>,
    reused: u64,
}

async fn send(binary: &std::path::Path, storage: &Storage, args: &SendArgs) -> Result<Value> {
    println!(
        "\n== send: {} connections over {} threads, {}-byte ciphertexts, {} s (+{} s warm-up)",
        args.concurrency, args.threads, args.size, args.seconds, args.warmup
    );
    let (server, admin) = start(binary, storage).await?;
    let (people, made) = threads(&server, &admin, args.threads.max(1)).await?;

    // Ciphertexts, before the clock starts.
    let per_lane = usize::try_from(
        (args.prepare_rate * (args.seconds + args.warmup)).div_ceil(args.concurrency as u64 * 2),
    )?;
    let started = Instant::now();
    let mut lanes = Vec::with_capacity(args.concurrency);
    let mut total = 0usize;
    let mut bytes = 0usize;
    for lane in 0..args.concurrency {
        let thread = lane % made.len();
        let (thread_id, epoch) = made[thread].clone();
        let (a, b) = (&people[thread * 2], &people[thread * 2 + 1]);
        let ciphertexts = [
            server::ciphertexts(a, &thread_id, args.size, per_lane)?,
            server::ciphertexts(b, &thread_id, args.size, per_lane)?,
        ];
        total += per_lane * 2;
        bytes = ciphertexts[0].first().map_or(0, Vec::len);
        // One connection per lane, from the first member's address; the
        // second member's session rides the same connection.
        let connection = server.client(a.address)?;
        let mut first = connection.clone();
        first.set_token(Some(a.token.clone()));
        let mut second = connection;
        second.set_token(Some(b.token.clone()));
        lanes.push(Lane {
            thread,
            thread_id,
            epoch,
            senders: [first, second],
            ciphertexts,
        });
    }
    let preparing = started.elapsed();
    println!(
        "prepared {total} MLS ciphertexts of {bytes} bytes in {:.1} s ({:.0} µs each, client side, \
         not charged to the server)",
        preparing.as_secs_f64(),
        preparing.as_secs_f64() * 1e6 / total.max(1) as f64
    );

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        tasks.spawn(async move {
            let mut result = LaneResult::default();
            let mut n = 0usize;
            loop {
                let sent_at = Instant::now();
                if sent_at >= end {
                    break;
                }
                let who = n % 2;
                let list = &lane.ciphertexts[who];
                let index = n / 2;
                if index >= list.len() {
                    result.reused += 1;
                }
                let ciphertext = list[index % list.len()].clone();
                n += 1;
                let answer = lane.senders[who]
                    .send_message(
                        &lane.thread_id,
                        &MessageRequest {
                            epoch: lane.epoch,
                            ciphertext: Blob(ciphertext),
                            attachments: Vec::new(),
                            urgent: false,
                        },
                    )
                    .await;
                let measured = sent_at >= measure_from && Instant::now() <= end;
                match answer {
                    Ok(_) => {
                        result.acknowledged += 1;
                        if measured {
                            result.measured += 1;
                            result.latencies.push(sent_at.elapsed());
                        }
                    }
                    Err(error) => {
                        result.errors += 1;
                        result.first_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            (lane.thread, result)
        });
    }
    let mut latencies = Vec::new();
    let (mut measured, mut errors, mut reused) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut acknowledged: HashMap<usize, u64> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (thread, result) = joined?;
        latencies.extend(result.latencies);
        measured += result.measured;
        errors += result.errors;
        reused += result.reused;
        *acknowledged.entry(thread).or_default() += result.acknowledged;
        if first_error.is_none() {
            first_error = result.first_error;
        }
    }
    let per_second = measured as f64 / args.seconds as f64;
    let latency = percentiles(latencies);
    println!(
        "sent {measured} messages in {} s: {per_second:.0} messages/s",
        args.seconds
    );
    println!("{}", latency_line("send latency", &latency));
    if errors > 0 {
        println!(
            "errors: {errors} (first: {})",
            first_error.as_deref().unwrap_or("")
        );
    }
    if reused > 0 {
        println!("note: {reused} sends reused a prepared ciphertext (raise --prepare-rate)");
    }

    // Every acknowledged message is in its thread's log.
    let mut missing = 0u64;
    for (thread, count) in &acknowledged {
        let (thread_id, _) = &made[*thread];
        let detail = people[thread * 2].client.thread(thread_id).await?;
        if detail.summary.last_seq < *count {
            missing += count - detail.summary.last_seq;
        }
    }
    let total_acknowledged: u64 = acknowledged.values().sum();
    if missing > 0 {
        return Err(format!("{missing} acknowledged messages are not in their threads").into());
    }
    println!("checked: all {total_acknowledged} acknowledged messages are in their threads' logs");
    let audit = verify_audit(&admin).await?;
    Ok(json!({
        "scenario": "send",
        "database": storage.name(),
        "concurrency": args.concurrency,
        "threads": args.threads,
        "ciphertext_bytes": bytes,
        "seconds": args.seconds,
        "messages": measured,
        "per_second": round(per_second),
        "latency": latency,
        "errors": errors,
        "acknowledged_total": total_acknowledged,
        "reused_ciphertexts": reused,
        "client_prepare_us_per_message": round(preparing.as_secs_f64() * 1e6 / total.max(1) as f64),
        "audit": audit,
    }))
}

/// Send times of messages in flight, by the ciphertext's last 16 bytes.
type InFlight = Arc<Mutex<HashMap<[u8; 16], (Instant, bool)>>>;

fn tail(ciphertext: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 16];
    let from = ciphertext.len().saturating_sub(16);
    let piece = &ciphertext[from..];
    key[..piece.len()].copy_from_slice(piece);
    key
}

async fn e2e(binary: &std::path::Path, storage: &Storage, args: &E2eArgs) -> Result<Value> {
    println!(
        "\n== e2e: {} messages/s offered over {} threads, {}-byte ciphertexts, {} s (+{} s warm-up)",
        args.rate, args.threads, args.size, args.seconds, args.warmup
    );
    let (server, admin) = start(binary, storage).await?;
    let (people, made) = threads(&server, &admin, args.threads.max(1)).await?;
    let total = usize::try_from(args.rate * (args.seconds + args.warmup))?;
    let per_thread = total.div_ceil(made.len());
    let started = Instant::now();
    let mut prepared = Vec::with_capacity(made.len());
    for (thread, (thread_id, _)) in made.iter().enumerate() {
        prepared.push(server::ciphertexts(
            &people[thread * 2],
            thread_id,
            args.size,
            per_thread,
        )?);
    }
    println!(
        "prepared {} MLS ciphertexts in {:.1} s (client side, not charged to the server)",
        per_thread * made.len(),
        started.elapsed().as_secs_f64()
    );

    // Each recipient listens on its WebSocket.
    let in_flight: InFlight = Arc::new(Mutex::new(HashMap::new()));
    let received = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut listeners = tokio::task::JoinSet::new();
    for thread in 0..made.len() {
        let mut socket = people[thread * 2 + 1].client.events().await?;
        let (in_flight, received) = (in_flight.clone(), received.clone());
        listeners.spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let at = Instant::now();
                if let Ok(Event::Entry { entry, .. }) = serde_json::from_str::<Event>(&text) {
                    let sent = in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&tail(&entry.body.0));
                    if let Some((sent_at, true)) = sent {
                        received
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(at - sent_at);
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let senders: Vec<Client> = made
        .iter()
        .enumerate()
        .map(|(thread, _)| people[thread * 2].client.clone())
        .collect();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let send_latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new((0u64, None::<String>)));
    let mut sends = tokio::task::JoinSet::new();
    let mut measured_sent = 0u64;
    for k in 0..total {
        let due = start + interval * u32::try_from(k)?;
        tokio::time::sleep_until(due.into()).await;
        let thread = k % made.len();
        let Some(ciphertext) = prepared[thread].get(k / made.len()).cloned() else {
            continue;
        };
        let measured = due >= measure_from;
        measured_sent += u64::from(measured);
        let client = senders[thread].clone();
        let (thread_id, epoch) = made[thread].clone();
        let (in_flight, send_latencies, errors) =
            (in_flight.clone(), send_latencies.clone(), errors.clone());
        sends.spawn(async move {
            let sent_at = Instant::now();
            in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(tail(&ciphertext), (sent_at, measured));
            let answer = client
                .send_message(
                    &thread_id,
                    &MessageRequest {
                        epoch,
                        ciphertext: Blob(ciphertext),
                        attachments: Vec::new(),
                        urgent: false,
                    },
                )
                .await;
            match answer {
                Ok(_) if measured => send_latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sent_at.elapsed()),
                Ok(_) => {}
                Err(error) => {
                    let mut errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
                    errors.0 += 1;
                    errors.1.get_or_insert_with(|| error.to_string());
                }
            }
        });
        // Reap finished sends as we go.
        while sends.try_join_next().is_some() {}
    }
    let offered_for = start.elapsed();
    while sends.join_next().await.is_some() {}
    // Late pushes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    listeners.abort_all();

    let e2e = std::mem::take(&mut *received.lock().unwrap_or_else(PoisonError::into_inner));
    let arrived = e2e.len() as u64;
    let send_latency = percentiles(std::mem::take(
        &mut *send_latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    ));
    let latency = percentiles(e2e);
    let (error_count, first_error) = errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let achieved = total as f64 / offered_for.as_secs_f64();
    println!(
        "offered {} messages/s (achieved {achieved:.0}/s); {arrived} of {measured_sent} measured \
         messages arrived by WebSocket",
        args.rate
    );
    println!("{}", latency_line("send → receive", &latency));
    println!("{}", latency_line("send (acknowledged)", &send_latency));
    if error_count > 0 {
        println!(
            "errors: {error_count} (first: {})",
            first_error.as_deref().unwrap_or("")
        );
    }
    let audit = verify_audit(&admin).await?;
    Ok(json!({
        "scenario": "e2e",
        "database": storage.name(),
        "offered_per_second": args.rate,
        "achieved_per_second": round(achieved),
        "threads": args.threads,
        "seconds": args.seconds,
        "measured_sent": measured_sent,
        "received": arrived,
        "latency": latency,
        "send_latency": send_latency,
        "errors": error_count,
        "audit": audit,
    }))
}

async fn connections(
    binary: &std::path::Path,
    storage: &Storage,
    args: &ConnectionsArgs,
) -> Result<Value> {
    println!(
        "\n== connections: {} idle WebSockets over {} devices, held {} s",
        args.count, args.devices, args.hold
    );
    let (server, admin) = start(binary, storage).await?;
    let people = server::clinicians(&server, &admin, args.devices.max(1)).await?;
    let settle = Duration::from_secs(2);
    tokio::time::sleep(settle).await;
    let before = server.rss()?;
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut opening = tokio::task::JoinSet::new();
    for n in 0..args.count {
        let client = people[n % people.len()].client.clone();
        let limit = limit.clone();
        opening.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(client.events().await?)
        });
    }
    let mut sockets = Vec::with_capacity(args.count);
    while let Some(opened) = opening.join_next().await {
        sockets.push(opened??);
    }
    println!(
        "opened {} authenticated WebSockets in {:.1} s",
        sockets.len(),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(settle).await;
    let at_open = server.rss()?;
    let ticks = server.cpu_ticks()?;
    let hold_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let cpu = (server.cpu_ticks()? - ticks) as f64
        / 100.0 // USER_HZ
        / hold_started.elapsed().as_secs_f64();
    let held = server.rss()?;
    // Still open: each answers a ping.
    let mut alive = 0usize;
    for socket in &mut sockets {
        if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
            continue;
        }
        let pong = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(frame)) = socket.next().await {
                if matches!(frame, Message::Pong(_)) {
                    return true;
                }
            }
            false
        })
        .await;
        alive += usize::from(matches!(pong, Ok(true)));
    }
    let peak = at_open.max(held);
    let per_connection = peak.saturating_sub(before) as f64 / args.count.max(1) as f64;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "server RSS: {:.1} MiB before, {:.1} MiB with {} open, {:.1} MiB after {} s idle; \
         {:.1} KiB per connection",
        mib(before),
        mib(at_open),
        args.count,
        mib(held),
        args.hold,
        per_connection / 1024.0
    );
    println!(
        "server CPU while idle: {:.1}% of one core; {alive} of {} sockets answered a ping after \
         the hold",
        cpu * 100.0,
        args.count
    );
    drop(sockets);
    let audit = verify_audit(&admin).await?;
    Ok(json!({
        "scenario": "connections",
        "database": storage.name(),
        "connections": args.count,
        "devices": args.devices,
        "rss_before_bytes": before,
        "rss_open_bytes": at_open,
        "rss_after_hold_bytes": held,
        "bytes_per_connection": round(per_connection),
        "idle_cpu_fraction_of_core": round(cpu),
        "alive_after_hold": alive,
        "audit": audit,
    }))
}

async fn baseline(
    binary: &std::path::Path,
    storage: &Storage,
    args: &BaselineArgs,
) -> Result<Value> {
    println!(
        "\n== baseline: GET /v1/health on {} connections, {} s (+{} s warm-up)",
        args.concurrency, args.seconds, args.warmup
    );
    let server = Server::start(binary, storage).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..args.concurrency {
        let client = server.client(server::address(lane))?;
        tasks.spawn(async move {
            let mut result = LaneResult::default();
            loop {
                let sent_at = Instant::now();
                if sent_at >= end {
                    break;
                }
                let answer = client.health().await;
                let measured = sent_at >= measure_from && Instant::now() <= end;
                match answer {
                    Ok(_) if measured => {
                        result.measured += 1;
                        result.latencies.push(sent_at.elapsed());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        result.errors += 1;
                        result.first_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            result
        });
    }
    let mut latencies = Vec::new();
    let (mut measured, mut errors) = (0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        let result = joined?;
        latencies.extend(result.latencies);
        measured += result.measured;
        errors += result.errors;
    }
    let per_second = measured as f64 / args.seconds as f64;
    let latency = percentiles(latencies);
    println!(
        "{measured} requests in {} s: {per_second:.0} requests/s",
        args.seconds
    );
    println!("{}", latency_line("latency", &latency));
    if errors > 0 {
        println!("errors: {errors}");
    }
    Ok(json!({
        "scenario": "baseline",
        "database": storage.name(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "requests": measured,
        "per_second": round(per_second),
        "latency": latency,
        "errors": errors,
    }))
}
