//! `--check-config` of a service binary, run as a process: what every
//! binary must accept and refuse (a bad or taken listen address, a missing
//! config file, a missing file the config names).

use std::net::TcpListener;
use std::process::Command;

/// One service binary and its environment prefix (`WXPUSH_TOKEN`).
pub struct CheckConfig {
    pub binary: &'static str,
    pub prefix: &'static str,
}

impl CheckConfig {
    /// Runs `--check-config` with the config `yaml` (if any) and the
    /// settings `env` (`("LISTEN", "...")` sets `{prefix}__LISTEN`); whether
    /// it passed, and what it printed.
    pub fn run(&self, yaml: Option<&str>, env: &[(&str, &str)]) -> (bool, String) {
        let mut cmd = Command::new(self.binary);
        cmd.arg("--check-config").env("RUST_BACKTRACE", "0");
        for (key, _) in std::env::vars() {
            if key.starts_with("WXPUSH_") {
                cmd.env_remove(key);
            }
        }
        // Defaults bind 0.0.0.0 on fixed ports; a check binds free ones.
        // Callers are checked by default; these checks are of the rest
        // (`AUTH__MODE` in `env` turns it back on).
        cmd.env(format!("{}__LISTEN", self.prefix), "127.0.0.1:0")
            .env(format!("{}__ADMIN_LISTEN", self.prefix), "127.0.0.1:0")
            .env(format!("{}__AUTH__MODE", self.prefix), "off");
        for (key, value) in env {
            cmd.env(format!("{}__{key}", self.prefix), value);
        }
        let dir = std::env::temp_dir().join(format!("wxpush-check-{}", std::process::id()));
        if let Some(yaml) = yaml {
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(format!("{}.yaml", self.prefix));
            std::fs::write(&path, yaml).expect("config written");
            cmd.arg("--config").arg(path);
        }
        let out = cmd.output().expect("the binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The checks every binary passes: defaults on free ports are fine; a
    /// listen address that is not one, or that is taken, and a config file
    /// that is missing are each refused with a message naming them.
    pub fn assert_standard(&self) {
        let (ok, out) = self.run(None, &[]);
        assert!(ok && out.contains("config OK"), "defaults refused: {out}");

        // Checking callers is the default: on without a caller is refused
        // at start, naming the settings, and so is a grants file that
        // cannot be read.
        let (ok, out) = self.run(None, &[("AUTH__MODE", "on")]);
        assert!(
            !ok && out.contains("auth.jwt or auth.trust_mesh") && out.contains("auth.mode: off"),
            "auth on without callers accepted: {out}"
        );
        let (ok, out) = self.run(
            None,
            &[
                ("AUTH__MODE", "on"),
                ("AUTH__TRUST_MESH", "true"),
                ("AUTH__GRANTS_FILE", "/nonexistent/grants.yaml"),
            ],
        );
        assert!(
            !ok && out.contains("auth.grants_file /nonexistent/grants.yaml"),
            "a missing grants file accepted: {out}"
        );

        let (ok, out) = self.run(None, &[("LISTEN", "foo")]);
        assert!(!ok && out.contains("listen"), "bad address accepted: {out}");
        let (ok, out) = self.run(None, &[("ADMIN_LISTEN", "127.0.0.1:99999")]);
        assert!(
            !ok && out.contains("admin_listen"),
            "bad port accepted: {out}"
        );

        let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = taken.local_addr().expect("bound").to_string();
        let (ok, out) = self.run(None, &[("LISTEN", &addr)]);
        assert!(!ok && out.contains(&addr), "taken address accepted: {out}");

        let mut cmd = Command::new(self.binary);
        let out = cmd
            .args(["--check-config", "--config", "/nonexistent/wxpush.yaml"])
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("the binary runs");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && text.contains("/nonexistent/wxpush.yaml"),
            "missing config file accepted: {text}"
        );
    }

    /// A config naming a file that does not exist is refused, naming it.
    /// On the postgres backend: refused without `backend.postgres_url`
    /// (naming it), and with one the check dials no database and never
    /// prints its password.
    pub fn assert_postgres_needs_url_but_no_database(&self) {
        let (ok, out) = self.run(None, &[("BACKEND__KIND", "postgres")]);
        assert!(!ok, "no postgres_url: refused");
        assert!(out.contains("backend.postgres_url"), "names the key: {out}");
        let url = "postgres://wxpush:s3cret@127.0.0.1:1/wxpush";
        let (ok, out) = self.run(
            None,
            &[
                ("BACKEND__KIND", "postgres"),
                ("BACKEND__POSTGRES_URL", url),
            ],
        );
        assert!(ok, "a check dials no database: {out}");
        assert!(
            !out.contains("s3cret"),
            "the password is never printed: {out}"
        );
    }

    pub fn assert_missing_file_refused(&self, yaml: &str, file: &str) {
        let (ok, out) = self.run(Some(yaml), &[]);
        assert!(!ok && out.contains(file), "missing {file} accepted: {out}");
    }
}
