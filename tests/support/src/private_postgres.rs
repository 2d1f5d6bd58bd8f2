//! A PostgreSQL server of a test's own, for a test that must stop it, or configure it
//! as the machine's shared one is not (TLS, `pg_hba.conf`): `initdb` into a temporary
//! directory and `postgres` on a free port of 127.0.0.1, run as the `postgres` OS user
//! (the server refuses to run as root), stopped when this is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A server initialised by [`PrivatePostgres::init`]; [`PrivatePostgres::start`]
/// starts it. Its Unix-domain socket is in [`PrivatePostgres::dir`].
pub struct PrivatePostgres {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// A server initialised with trust authentication and started.
    #[track_caller]
    pub fn create(what: &str) -> Option<PrivatePostgres> {
        let server = PrivatePostgres::init(what)?;
        server.start();
        Some(server)
    }

    /// A server initialised (user `postgres`, trust authentication) but not started,
    /// for the caller to configure; `None` (after [`crate::skip`]ping `what`) where
    /// PostgreSQL's server programs are not installed.
    #[track_caller]
    pub fn init(what: &str) -> Option<PrivatePostgres> {
        let Some(bin) = server_programs() else {
            crate::skip(
                what,
                "PostgreSQL's server programs (initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH)",
            );
            return None;
        };
        let data = tempfile::tempdir().expect("a temporary directory");
        run_checked(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(data.path()),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = PrivatePostgres { bin, data, port };
        server.run(
            "initdb",
            &["--auth=trust", "--username=postgres", "--no-sync", "-D"],
        );
        Some(server)
    }

    /// The directory the server's files and socket are in (its data directory is
    /// `cluster` inside it).
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    fn cluster(&self) -> PathBuf {
        self.dir().join("cluster")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets `name` to `value` in `postgresql.conf`, from the next start on (where
    /// `ALTER SYSTEM` can still change it).
    pub fn set(&self, name: &str, value: &str) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.cluster().join("postgresql.conf"))
            .expect("the cluster's postgresql.conf");
        writeln!(conf, "{name} = '{}'", value.replace('\'', "''")).unwrap();
    }

    /// Writes `contents` to `name` in [`dir`](Self::dir), readable by the server
    /// alone (as it wants its private key); its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir().join(name);
        std::fs::write(&path, contents).expect("the server's directory is writable");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        run_checked(Command::new("chown").arg("postgres:postgres").arg(&path));
        path
    }

    /// Replaces `pg_hba.conf`: who may connect how.
    pub fn hba(&self, lines: &str) {
        let path = self.cluster().join("pg_hba.conf");
        std::fs::write(path, lines).expect("the cluster's pg_hba.conf is writable");
    }

    /// Runs one of the server's programs as `postgres`, with the data directory last.
    fn run(&self, program: &str, args: &[&str]) {
        run_checked(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(program))
                .args(args)
                .arg(self.cluster()),
        );
    }

    /// Starts it and waits until it accepts connections (`pg_ctl -w`).
    pub fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir().display()
        );
        let log = self.dir().join("server.log");
        let log = log.to_str().expect("a UTF-8 temporary path");
        self.run("pg_ctl", &["-w", "-l", log, "-o", &options, "start", "-D"]);
    }

    /// Stops it the way a crash would: no checkpoint, connections cut.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-w", "-m", "immediate", "stop", "-D"]);
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: over TCP, without a password.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A connection string for user `postgres` over the Unix-domain socket, which
    /// `pg_hba.conf`'s `local` lines govern, and never TLS: for a test's own setup.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir().display(),
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "stop", "-D"])
            .arg(self.cluster())
            .output();
    }
}

/// The directory of `initdb` and `pg_ctl`: Debian's newest
/// `/usr/lib/postgresql/*/bin`, else wherever `initdb` on `PATH` leads.
fn server_programs() -> Option<PathBuf> {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).max());
    let on_path = || {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("initdb"))
            .find(|initdb| initdb.exists())
            .and_then(|initdb| std::fs::canonicalize(initdb).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
    };
    debian
        .filter(|bin| bin.join("initdb").exists())
        .or_else(on_path)
        .filter(|bin| bin.join("pg_ctl").exists())
}

/// Runs a command and asserts it succeeded, with its output in the message.
#[track_caller]
pub fn run_checked(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
