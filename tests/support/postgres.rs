//! A throwaway PostgreSQL server of its own (initdb in a temporary folder, a free port on
//! 127.0.0.1, trust auth), for what the machine's shared server must not be put through: a
//! restart in the middle of a run, TLS with a certificate the test makes. Stopped and removed
//! when dropped. Uses the machine's PostgreSQL binaries (`pg_config --bindir`, else
//! /usr/lib/postgresql/*/bin); as root it runs them as the `postgres` user, since PostgreSQL
//! refuses to run as root.
//!
//! Use it from a test file with `mod support { pub mod postgres; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A running cluster.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The user the server runs as when the test runs as root.
    run_as: Option<&'static str>,
}

/// TLS material for a server: a certificate and key file in PEM.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PgCluster {
    /// initdb, then start on a free port.
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// As [`PgCluster::start`], with `ssl = on`, the given certificate, and TCP connections
    /// without TLS refused.
    pub fn start_with_tls(tls: &ServerTls) -> PgCluster {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&ServerTls>) -> PgCluster {
        let bin = bindir();
        let run_as = is_root().then_some("postgres");
        let dir = std::env::temp_dir().join(format!(
            "txp-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = PgCluster { port: free_port(), dir, bin, run_as };
        cluster.give_to_server(&cluster.dir);
        let data = cluster.data();
        cluster.checked(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"],
        );
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\n\
             max_connections = 200\n",
            cluster.port,
            cluster.dir.display()
        );
        if let Some(tls) = tls {
            // The server reads its key as its own user, with no access for others.
            for (from, name) in [(&tls.cert, "server.crt"), (&tls.key, "server.key")] {
                let to = cluster.dir.join("data").join(name);
                std::fs::copy(from, &to).unwrap();
                cluster.give_to_server(&to);
                set_mode(&to, 0o600);
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            // TLS only: a client that does not ask for it is refused.
            let hba = cluster.dir.join("data/pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(&hba, format!("hostnossl all all all reject\n{rules}")).unwrap();
        }
        let conf_path = cluster.dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        cluster.pg_ctl(&["start", "-w", "-t", "60"]);
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "CREATE DATABASE {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server as a crash would (`-m immediate`: no checkpoint, clients cut) and
    /// starts it again on the same port; returns once it accepts connections.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "60"]);
    }

    /// Stops the server (clients cut) and leaves it stopped.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "60"]);
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "60"]);
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = self.dir.join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log];
        all.extend_from_slice(args);
        self.checked("pg_ctl", &all);
    }

    /// A server program, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(&exe);
                cmd
            }
            None => Command::new(&exe),
        }
    }

    fn checked(&self, program: &str, args: &[&str]) -> Output {
        let out =
            self.command(program).args(args).current_dir(&self.dir).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }

    fn give_to_server(&self, path: &Path) {
        if let Some(user) = self.run_as {
            let status = Command::new("chown").args(["-R", user]).arg(path).status().unwrap();
            assert!(status.success(), "chown {user} {}", path.display());
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "stop", "-m", "immediate", "-w", "-t", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where initdb, pg_ctl and psql are.
fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|dir| dir.join("initdb").is_file());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server binaries (initdb, pg_ctl) are missing: apt-get install postgresql")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}
