//! Debian's Chromium for the web app's tests, driven by Playwright scripts
//! under `web/tests/` (one phase per run, its result as the last line of
//! JSON), trusting the test CA through an NSS database of its own (no
//! certificate error is ignored). The tests run when `CURBSIDE_CHROMIUM`
//! names the browser (`.ci/run` sets it, with `web/node_modules`
//! installed); otherwise they say they were skipped.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The browser and a driver script, if this run is to use them.
pub struct Browser {
    chromium: String,
    driver: PathBuf,
    /// `$HOME` for the browser: its NSS database trusts the test CA.
    home: tempfile::TempDir,
    /// The browser profile, kept between phases (it holds the device key
    /// and the app's IndexedDB).
    pub profile: tempfile::TempDir,
    url: String,
}

/// `CURBSIDE_CHROMIUM`, or `None` after saying that `test` was skipped.
pub fn chromium_for(test: &str) -> Option<String> {
    let found = std::env::var("CURBSIDE_CHROMIUM").ok();
    if found.is_none() {
        curbside_tests::skipped(
            test,
            "CURBSIDE_CHROMIUM is not set (.ci/run sets it, with web/node_modules installed)",
        );
    }
    found
}

impl Browser {
    /// The browser opening `url`, trusting `ca`, driven by `web/tests/SCRIPT`.
    pub fn new(chromium: String, script: &str, ca: &Path, url: String) -> Self {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../web/tests")
            .join(script);
        let home = tempfile::tempdir().unwrap();
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        certutil(&["-d", &db, "-N", "--empty-password"]);
        certutil(&[
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "curbside-test-ca",
            "-i",
            ca.to_str().unwrap(),
        ]);
        Self {
            chromium,
            driver,
            home,
            profile: tempfile::tempdir().unwrap(),
            url,
        }
    }

    fn command(&self, phase: &str, vars: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("node");
        command
            .arg(&self.driver)
            .arg(phase)
            .env("HOME", self.home.path())
            .env("CHROMIUM", &self.chromium)
            .env("PROFILE_DIR", self.profile.path())
            .env("APP_URL", &self.url)
            .kill_on_drop(true);
        for (name, value) in vars {
            command.env(name, value);
        }
        command
    }

    /// Runs one phase of the driver; its last line of output, as JSON.
    pub async fn phase(&self, phase: &str, vars: &[(&str, &str)]) -> serde_json::Value {
        let output = self.command(phase, vars).output().await.expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "phase {phase} failed:\n{stdout}\n{stderr}"
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|error| panic!("phase {phase}: {error} in {stdout}\n{stderr}"))
    }

    /// Starts a phase that stops at steps: it prints `STEP NAME JSON` and
    /// waits for [`Steps::next`] (a line on its standard input) before it
    /// goes on, so the test can act with the CLI while the page stays open.
    pub fn steps(&self, phase: &str, vars: &[(&str, &str)]) -> Steps {
        let mut child = self
            .command(phase, vars)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node runs");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        Steps {
            phase: phase.to_owned(),
            child,
            stdout,
            stderr: Some(stderr),
            seen: String::new(),
        }
    }
}

/// A running phase with steps (see [`Browser::steps`]).
pub struct Steps {
    phase: String,
    child: tokio::process::Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
    seen: String,
}

impl Steps {
    async fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill().await;
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        panic!("phase {}: {why}\n{}\n{stderr}", self.phase, self.seen);
    }

    /// Waits (up to 3 minutes) for the step `name`; what it reported.
    pub async fn reached(&mut self, name: &str) -> serde_json::Value {
        let prefix = format!("STEP {name} ");
        loop {
            let line =
                tokio::time::timeout(std::time::Duration::from_secs(180), self.stdout.next_line())
                    .await;
            match line {
                Ok(Ok(Some(line))) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if let Some(json) = line.strip_prefix(&prefix) {
                        return serde_json::from_str(json).unwrap();
                    }
                }
                Ok(_) => self.fail(&format!("ended before step {name}")).await,
                Err(_) => self.fail(&format!("no step {name} within 3 minutes")).await,
            }
        }
    }

    /// Lets the phase go on past the step it stopped at.
    pub async fn next(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits for the phase to end; its last line of output, as JSON.
    pub async fn finished(mut self) -> serde_json::Value {
        let mut last = String::new();
        while let Ok(Some(line)) = self.stdout.next_line().await {
            self.seen.push_str(&line);
            self.seen.push('\n');
            last = line;
        }
        let status = self.child.wait().await.unwrap();
        if !status.success() {
            self.fail("failed").await;
        }
        serde_json::from_str(&last)
            .unwrap_or_else(|error| panic!("phase {}: {error} in {last}", self.phase))
    }
}

fn certutil(args: &[&str]) {
    let status = std::process::Command::new("certutil")
        .args(args)
        .status()
        .expect("certutil (Debian's libnss3-tools) runs");
    assert!(status.success(), "certutil {args:?}");
}
