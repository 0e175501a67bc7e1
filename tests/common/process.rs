//! Running the real `tandem` binary as a child process, for the tests that need signals (SIGKILL,
//! SIGTERM, SIGHUP) or the CLI's own exit codes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct TandemProcess {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub log: PathBuf,
}

/// A loopback port that was free a moment ago (the daemon binds it with SO_REUSEADDR).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn tandem(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.args(args)
        .env_remove("TANDEM_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info");
    c
}

impl TandemProcess {
    /// Starts `tandem run --config PATH` and waits until /readyz answers 200.
    pub async fn start(config: &Path, addr: std::net::SocketAddr, log: &Path) -> TandemProcess {
        Self::start_with_env(config, addr, log, &[]).await
    }

    /// Like [`TandemProcess::start`], with extra environment (e.g. systemd's NOTIFY_SOCKET).
    pub async fn start_with_env(
        config: &Path,
        addr: std::net::SocketAddr,
        log: &Path,
        env: &[(&str, &str)],
    ) -> TandemProcess {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = tandem(&["run", "--config", config.to_str().expect("utf-8 path")])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn tandem");
        let p = TandemProcess {
            child,
            addr,
            log: log.to_owned(),
        };
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/readyz");
        super::wait_until(Duration::from_secs(20), "tandem to become ready", || {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        })
        .await;
        p
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// SIGKILL: no chance to clean up, exactly like a power cut for the process.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit and returns its code.
    pub async fn wait_exit(mut self, within: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tandem did not exit within {within:?}; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TandemProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
