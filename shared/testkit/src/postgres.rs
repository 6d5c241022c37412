//! A private PostgreSQL for one test: `initdb` into a temp dir, the server
//! on a free loopback port (never the machine's own 5432), stopped and
//! removed when dropped. Durable as PostgreSQL is by default (a commit is
//! on disk before it is acknowledged), so a test that crashes it with
//! [`PostgresServer::kill`] can count on what was acknowledged.

use crate::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private PostgreSQL.
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

/// Where the server binaries are: `$WXPUSH_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else `PATH`.
fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("WXPUSH_PG_BINDIR") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A command for a server binary: as the `postgres` user when we are root
/// (initdb and postgres refuse to run as root), by exec, so the child's
/// pid is the server's.
fn server_command(bin: &Path, name: &str) -> Command {
    let program = bin.join(name);
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// Creates a cluster and starts it; panics with install advice when
    /// PostgreSQL is missing.
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("wxpush-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir for postgres");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the temp dir to the postgres user");
        }
        let bin = bindir();
        let out = server_command(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run initdb from {bin:?} ({e}); run scripts/install-test-tools.sh or apt-get install postgresql")
            });
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            port,
            dir,
            bin,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = server_command(&self.bin, "postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres on port {} not ready within 20 s", self.port);
    }

    /// Whether the server accepts connections right now (`pg_isready`).
    pub fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL with `psql` (setup and checks from outside the code under
    /// test); returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server and every backend (`SIGKILL`), as a crash of its
    /// machine or container would: only what was committed survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Backends first: a lone killed postmaster leaves them serving
            // their open connections for a moment, which no crash does.
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ready() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server and every backend (`SIGSTOP`): sockets stay open
    /// and nothing answers, as a stalled database does, until
    /// [`Self::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let pid = child.id().to_string();
            let _ = Command::new("pkill")
                .args([&format!("-{sig}"), "-P", &pid])
                .status();
            let ok = Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} postgres");
        }
    }

    /// Starts it again on the same port, with its data.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // SIGQUIT: immediate shutdown, backends included; SIGCONT after
            // it, so a server a failed test left paused acts on it.
            self.signal("QUIT");
            self.signal("CONT");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
