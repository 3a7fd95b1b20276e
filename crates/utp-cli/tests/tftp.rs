//! `utp tftp serve`, `get` and `put` end to end: the real binary, loopback only, a
//! temporary root per test.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

mod common;

use common::{TempDir, listening_addr, pseudo_random, text, utp};

/// A test's directories: `root/` (served) and `local/` (the clients' files).
fn dirs(tag: &str) -> TempDir {
    let dir = TempDir::new(&format!("tftp-{tag}"));
    fs::create_dir(dir.root()).unwrap();
    fs::create_dir(dir.local()).unwrap();
    dir
}

impl TempDir {
    /// The served directory.
    fn root(&self) -> PathBuf {
        self.join("root")
    }

    /// Where the clients' files are.
    fn local(&self) -> PathBuf {
        self.join("local")
    }
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    names.sort();
    names
}

/// A running `utp tftp serve`, its address, and its standard error line by line.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
}

impl Server {
    /// Starts `utp tftp serve --root ROOT --listen 127.0.0.1:0 ARGS...` and reads the port it
    /// announces on its first line.
    fn start(root: &Path, args: &[&str]) -> Self {
        let mut child = utp()
            .args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let addr = listening_addr(&mut stderr);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, addr, lines }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Waits (at most 30 s) for a log line containing `fragment`, and returns it.
    fn wait_line(&self, fragment: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(fragment) => return line,
                Ok(_) => {}
                Err(e) => panic!("no server line containing {fragment:?}: {e}"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `utp tftp ARGS...` in `dir` with `stdin`, bounded to two minutes.
fn tftp<S: AsRef<OsStr>>(dir: &Path, args: &[S], stdin: Option<&[u8]>) -> Output {
    let mut child = utp()
        .arg("tftp")
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &id.to_string()]).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = tx.send(());
    output
}

#[track_caller]
fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {:?}\nstderr: {}",
        output.status,
        text(&output.stderr)
    );
}

#[test]
fn put_then_get_round_trips_with_every_option_mix() {
    let dir = dirs("mix");
    let server = Server::start(&dir.root(), &["--allow-write", "--allow-overwrite"]);
    let data = pseudo_random(1, 300_001);
    fs::write(dir.local().join("src.bin"), &data).unwrap();
    let mixes: [&[&str]; 5] = [
        &[],
        &["--no-options"],
        &["--blksize", "512", "--windowsize", "4"],
        &["--blksize", "8192", "--windowsize", "64", "--timeout", "2"],
        &["--blksize", "65464", "--windowsize", "1", "--rollover", "1"],
    ];
    for (n, mix) in mixes.iter().enumerate() {
        let remote = format!("f{n}.bin");
        let mut args = vec!["put".to_owned(), server.addr(), "src.bin".into(), remote.clone()];
        args.extend(mix.iter().map(|a| a.to_string()));
        let put = tftp(&dir.local(), &args, None);
        assert_success(&put, &format!("put with {mix:?}"));
        let summary = text(&put.stderr);
        assert!(summary.starts_with("sent 300001 bytes in "), "{summary}");
        server.wait_line(&format!("received \"{remote}\""));
        assert!(fs::read(dir.root().join(&remote)).unwrap() == data, "{remote} differs");

        let copy = format!("copy{n}.bin");
        let mut args =
            vec!["get".to_owned(), server.addr(), remote.clone(), "-o".into(), copy.clone()];
        args.extend(mix.iter().map(|a| a.to_string()));
        let get = tftp(&dir.local(), &args, None);
        assert_success(&get, &format!("get with {mix:?}"));
        assert!(fs::read(dir.local().join(&copy)).unwrap() == data, "{copy} differs");
    }
    // Without --output, the remote name's last component in the current directory.
    fs::create_dir(dir.root().join("sub")).unwrap();
    fs::write(dir.root().join("sub/inner.txt"), b"inner").unwrap();
    let get = tftp(&dir.local(), &["get", &server.addr(), "/sub/inner.txt"], None);
    assert_success(&get, "get without --output");
    assert_eq!(fs::read(dir.local().join("inner.txt")).unwrap(), b"inner");
    assert!(!names(&dir.local()).iter().any(|n| n.ends_with(".part")), "{:?}", names(&dir.local()));
}

#[test]
fn json_summaries_have_the_send_keys_and_the_sizes() {
    let dir = dirs("json");
    let server = Server::start(&dir.root(), &[]);
    fs::write(dir.root().join("a.bin"), pseudo_random(2, 100_000)).unwrap();
    let get = tftp(&dir.local(), &["get", &server.addr(), "a.bin", "--json"], None);
    assert_success(&get, "get --json");
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    for key in ["bytes", "seconds", "mbps", "peer", "sha256", "file", "blksize", "windowsize"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(json["bytes"], 100_000);
    assert_eq!(json["blksize"], 1428);
    assert_eq!(json["windowsize"], 16);
    assert_eq!(json["peer"], server.addr());
    assert_eq!(json["file"], "a.bin");
    assert!(get.stderr.is_empty(), "{}", text(&get.stderr));

    let get = tftp(
        &dir.local(),
        &["get", &server.addr(), "a.bin", "--no-options", "--json", "-o", "b"],
        None,
    );
    assert_success(&get, "get --no-options --json");
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!((json["blksize"].clone(), json["windowsize"].clone()), (512.into(), 1.into()));
}

#[test]
fn output_dash_writes_standard_output_and_the_summary_goes_to_stderr() {
    let dir = dirs("stdout");
    let server = Server::start(&dir.root(), &[]);
    let data = pseudo_random(3, 70_000);
    fs::write(dir.root().join("a.bin"), &data).unwrap();
    let get = tftp(&dir.local(), &["get", &server.addr(), "a.bin", "--output", "-"], None);
    assert_success(&get, "get -o -");
    assert!(get.stdout == data, "standard output differs");
    assert!(text(&get.stderr).starts_with("received 70000 bytes in "), "{}", text(&get.stderr));

    let get = tftp(&dir.local(), &["get", &server.addr(), "a.bin", "-o", "-", "--json"], None);
    assert_success(&get, "get -o - --json");
    assert!(get.stdout == data, "standard output differs with --json");
    let json: serde_json::Value = serde_json::from_slice(&get.stderr).unwrap();
    assert_eq!(json["bytes"], 70_000);
    assert!(json["file"].is_null(), "{json}");
    assert!(names(&dir.local()).is_empty(), "{:?}", names(&dir.local()));
}

#[test]
fn put_from_standard_input_needs_a_remote_name() {
    let dir = dirs("stdin");
    let server = Server::start(&dir.root(), &["--allow-create"]);
    let put =
        tftp(&dir.local(), &["put", &server.addr(), "-", "piped.txt"], Some(b"from a pipe\n"));
    assert_success(&put, "put -");
    server.wait_line("received \"piped.txt\"");
    assert_eq!(fs::read(dir.root().join("piped.txt")).unwrap(), b"from a pipe\n");

    let put = tftp(&dir.local(), &["put", &server.addr(), "-"], Some(b"x"));
    assert_eq!(put.status.code(), Some(2), "{}", text(&put.stderr));
    assert!(text(&put.stderr).contains("needs REMOTE"), "{}", text(&put.stderr));
}

#[test]
fn a_refused_get_exits_1_and_leaves_no_partial_file() {
    let dir = dirs("refused");
    let server = Server::start(&dir.root(), &[]);
    fs::write(dir.local().join("keep.bin"), b"do not touch").unwrap();
    for (remote, output, fragment) in [
        ("missing.bin", "new.bin", "ERROR 1 (file not found): file not found"),
        ("missing.bin", "keep.bin", "ERROR 1 (file not found)"),
        ("../escape", "escape.bin", "ERROR 2 (access violation)"),
    ] {
        let get = tftp(&dir.local(), &["get", &server.addr(), remote, "-o", output], None);
        assert_eq!(get.status.code(), Some(1), "{}", text(&get.stderr));
        let err = text(&get.stderr);
        assert!(err.starts_with("utp: ") && err.contains(fragment), "{err}");
        assert_eq!(names(&dir.local()), ["keep.bin"], "after getting {remote} into {output}");
        assert_eq!(fs::read(dir.local().join("keep.bin")).unwrap(), b"do not touch");
    }
    server.wait_line("refused read of \"missing.bin\"");
}

#[test]
fn uploads_follow_the_write_flags_and_the_size_cap() {
    let dir = dirs("policy");
    fs::write(dir.local().join("small.bin"), b"small").unwrap();
    fs::write(dir.local().join("big.bin"), pseudo_random(4, 2000)).unwrap();

    // Read-only by default.
    let server = Server::start(&dir.root(), &[]);
    let put = tftp(&dir.local(), &["put", &server.addr(), "small.bin"], None);
    assert_eq!(put.status.code(), Some(1));
    assert!(text(&put.stderr).contains("ERROR 2 (access violation)"), "{}", text(&put.stderr));
    server.wait_line("refused write of \"small.bin\"");
    drop(server);

    // --allow-write is create-only; --max-upload caps by tsize and while receiving.
    let server = Server::start(&dir.root(), &["--allow-write", "--max-upload", "1000"]);
    let put = tftp(&dir.local(), &["put", &server.addr(), "small.bin"], None);
    assert_success(&put, "put of a new file");
    server.wait_line("received \"small.bin\"");
    let put = tftp(&dir.local(), &["put", &server.addr(), "small.bin"], None);
    assert_eq!(put.status.code(), Some(1));
    assert!(text(&put.stderr).contains("ERROR 6 (file already exists)"), "{}", text(&put.stderr));
    for extra in [&[][..], &["--no-options"]] {
        let mut args = vec!["put".to_owned(), server.addr(), "big.bin".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let put = tftp(&dir.local(), &args, None);
        assert_eq!(put.status.code(), Some(1), "{extra:?}");
        assert!(text(&put.stderr).contains("ERROR 3 (disk full"), "{}", text(&put.stderr));
    }
    server.wait_line("failed to receive \"big.bin\"");
    assert_eq!(names(&dir.root()), ["small.bin"], "no target nor temporary file");
}

#[test]
fn bad_arguments_exit_2_and_say_what_to_fix() {
    let dir = dirs("usage");
    for (args, fragment) in [
        (&["get", "127.0.0.1", "x", "--blksize", "5"][..], "--blksize must be between 8 and 65464"),
        (
            &["get", "127.0.0.1", "x", "--windowsize", "0"],
            "--windowsize must be between 1 and 65535",
        ),
        (&["get", "127.0.0.1", "x", "--timeout", "0"], "--timeout must be between 1 and 255"),
        (&["get", "127.0.0.1", "x", "--rollover", "2"], "--rollover must be 0 or 1"),
        (&["get", "127.0.0.1", "x", "--mode", "mail"], "--mode must be octet or netascii"),
        (&["get", "host:port", "x"], "expected HOST or HOST:PORT"),
        (&["get", "127.0.0.1", "dir/"], "pass --output LOCAL"),
        (&["get", "127.0.0.1", "x", "--no-options", "--blksize", "512"], "cannot be used with"),
        (&["serve", "--root", ".", "--max-upload", "4X"], "--max-upload must be a size"),
        (&["serve", "--root", ".", "--max-transfers", "0"], "--max-transfers must be between"),
    ] {
        let out = tftp(&dir.local(), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(fragment), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn serve_stops_with_0_on_sigterm() {
    if !cfg!(unix) {
        return;
    }
    let dir = dirs("sigterm");
    let mut server = Server::start(&dir.root(), &[]);
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve still running 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
