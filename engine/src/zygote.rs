//! A fork server for workers (a "zygote", as Android and Chromium call theirs): the worker program
//! started once per run, which forks a fresh process for each stage.
//!
//! Why: starting the worker costs about 0.65 s of CPU here, 0.53 s of it libtorch's static
//! initialisers; a smoke run starts 105 workers, so two thirds of a minute went to loading the
//! same library again. The zygote loads it once and then does nothing but fork: it is one thread,
//! it has made no tensor, touched no GPU and read no stage's input, so each child is what a fresh
//! worker would be at the start of `main`, and it stays a process of its own: a panic, an abort or a
//! SIGKILL takes only its stage, as with a worker spawned directly (`crate::worker`).
//!
//! The protocol, both halves of which are in this module:
//! - The engine starts `program args..` (the worker's `zygote` mode) with its stdin one end of a
//!   `SOCK_SEQPACKET` socket pair, the control socket; the zygote answers one record `ready`.
//! - Per stage, the engine makes the stage's three pipes and a stream socket pair (the stage's
//!   line), and sends one control record: the stage's environment (`CUDA_VISIBLE_DEVICES`) as JSON,
//!   with the line and the child's ends of the pipes as `SCM_RIGHTS`.
//! - The zygote forks; the child makes the pipes its stdin, stdout and stderr, restores the signals
//!   the zygote changed, asks the kernel to SIGKILL it when the zygote ends, and runs the stage
//!   (exit code 101 on a panic, as Rust's own `main`).
//! - On the line the zygote writes `pid <n>` after the fork and `exit <wait status>` once it has
//!   reaped the child; it reads `kill <signal>` and signals the child if it is not reaped yet (so a
//!   signal can never reach a recycled pid). A line the engine closes first kills the child.
//! - The zygote ends when the control socket closes: the engine exited or was killed, and then the
//!   children die with it (their parent-death signal), as directly spawned workers die with the
//!   engine.
//! - The zygote ignores SIGINT: a terminal's Ctrl-C reaches every process of the foreground group,
//!   and the stages (which get it) and the engine (which stops them) are what answer it.
//!
//! If the zygote cannot be started, or ends unexpectedly, the engine spawns workers directly for
//! the rest of the run ([`Zygote::fork`] says which by returning `None`).

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The largest control record (the stage's environment as JSON).
const RECORD: usize = 4096;
/// The fds of a fork request: the line, the child's stdin, stdout and stderr.
const FDS: usize = 4;
/// How long the engine waits for the zygote's `ready` and for a fork's `pid`.
const ANSWER: Duration = Duration::from_secs(60);

/// The engine's handle on a zygote, started at the first stage it forks.
#[derive(Debug)]
pub struct Zygote {
    program: PathBuf,
    args: Vec<String>,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    NotStarted,
    Serving {
        process: Child,
        control: OwnedFd,
    },
    /// It could not start or it ended: workers are spawned directly from then on.
    Gone,
}

impl Zygote {
    /// A zygote to be started as `program args..` when the first stage runs.
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Zygote { program, args, state: Mutex::new(State::NotStarted) }
    }

    /// A fresh worker process for one stage with `CUDA_VISIBLE_DEVICES=gpu` if given, or `None` if
    /// there is no zygote to fork it (the caller then spawns the worker itself). The first call
    /// starts the zygote.
    pub fn fork(&self, gpu: Option<&str>) -> Option<Forked> {
        let mut state = self.state.lock().unwrap();
        if matches!(*state, State::NotStarted) {
            *state = match self.start() {
                Ok((process, control)) => State::Serving { process, control },
                Err(e) => {
                    eprintln!("note: the worker's fork server did not start ({e:#}); each stage starts its own worker");
                    State::Gone
                }
            };
        }
        let State::Serving { control, .. } = &*state else { return None };
        match request(control, gpu) {
            Ok(forked) => Some(forked),
            Err(e) => {
                eprintln!("note: the worker's fork server stopped answering ({e:#}); each stage starts its own worker from now on");
                if let State::Serving { mut process, control } = std::mem::replace(&mut *state, State::Gone) {
                    drop(control);
                    let _ = process.kill();
                    let _ = process.wait();
                }
                None
            }
        }
    }

    fn start(&self) -> anyhow::Result<(Child, OwnedFd)> {
        let (ours, theirs) = socket_pair(libc::SOCK_SEQPACKET)?;
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::from(theirs)).stdout(Stdio::null()).stderr(Stdio::inherit());
        // Its children, the stages, inherit its environment: no credentials in it.
        crate::secrets::scrub(&mut command);
        let mut process = command.spawn().with_context(|| format!("starting {}", self.program.display()))?;
        // Our copy of the zygote's end goes with `command`: its end of file is then the zygote's.
        drop(command);
        let mut buf = [0u8; 64];
        let answer = recv_timeout(&ours, &mut buf, ANSWER).context("waiting for its `ready`").and_then(|n| {
            if &buf[..n] == b"ready" {
                Ok(())
            } else {
                bail!(
                    "{} {} answered {:?} instead of `ready`",
                    self.program.display(),
                    self.args.join(" "),
                    String::from_utf8_lossy(&buf[..n])
                )
            }
        });
        if let Err(e) = answer {
            let _ = process.kill();
            let _ = process.wait();
            return Err(e);
        }
        Ok((process, ours))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        if let State::Serving { process, control } = std::mem::replace(self.state.get_mut().unwrap(), State::Gone) {
            // Closing the control socket is the zygote's signal to end.
            drop(control);
            let mut process = process;
            let _ = process.wait();
        }
    }
}

/// A worker forked by the zygote: its pipes and its line.
#[derive(Debug)]
pub struct Forked {
    /// Its process id, as the fork server reported it (signals go through the fork server).
    pub pid: i32,
    streams: Option<(File, File, File)>,
    line: UnixStream,
    pending: Vec<u8>,
    status: Option<ExitStatus>,
}

impl Forked {
    /// Its stdin, stdout and stderr (the engine's ends), taken once.
    pub fn streams(&mut self) -> Option<(File, File, File)> {
        self.streams.take()
    }

    /// Its wait status once the zygote has reaped it; `None` while it runs. A line that ends
    /// without one means the zygote itself ended, and its children with it (SIGKILL).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let mut buf = [0u8; 256];
        let mut ended = false;
        loop {
            match self.line.read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if let Some(status) = text.trim().strip_prefix("exit ").and_then(|s| s.parse::<i32>().ok()) {
                self.status = Some(ExitStatus::from_raw(status));
            }
        }
        if ended && self.status.is_none() {
            self.status = Some(ExitStatus::from_raw(libc::SIGKILL));
        }
        Ok(self.status)
    }

    /// Sends it `signal` (through the zygote, which knows whether it is still running).
    pub fn signal(&mut self, signal: i32) {
        if self.status.is_none() {
            let _ = self.line.write_all(format!("kill {signal}\n").as_bytes());
        }
    }
}

/// Asks the zygote for a child: its pipes, its line, its pid.
fn request(control: &OwnedFd, gpu: Option<&str>) -> anyhow::Result<Forked> {
    let (line, child_line) = socket_pair(libc::SOCK_STREAM)?;
    let (child_stdin, stdin) = pipe()?;
    let (stdout, child_stdout) = pipe()?;
    let (stderr, child_stderr) = pipe()?;
    let env = serde_json::json!({ "gpu": gpu });
    send_with_fds(
        control.as_raw_fd(),
        env.to_string().as_bytes(),
        &[child_line.as_raw_fd(), child_stdin.as_raw_fd(), child_stdout.as_raw_fd(), child_stderr.as_raw_fd()],
    )
    .context("sending a fork request")?;
    // The child's ends now live in the zygote (and then in the child): ours close here, so that
    // the stage's stdout and stderr end when the child ends.
    drop((child_line, child_stdin, child_stdout, child_stderr));
    let mut line = UnixStream::from(line);
    line.set_read_timeout(Some(ANSWER))?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") {
        match line.read(&mut byte) {
            Ok(0) => bail!("it ended before it forked"),
            Ok(_) => answer.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("waiting for the forked worker's pid"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let Some(pid) = text.trim().strip_prefix("pid ").and_then(|p| p.parse().ok()) else {
        bail!("it answered {:?} instead of a pid", text.trim());
    };
    line.set_read_timeout(None)?;
    line.set_nonblocking(true)?;
    let streams = Some((File::from(stdin), File::from(stdout), File::from(stderr)));
    Ok(Forked { pid, streams, line, pending: Vec::new(), status: None })
}

/// The zygote's side: serves fork requests on stdin (the control socket) until it closes; each
/// child runs `stage` and exits with its code. Returns the zygote's own exit code.
pub fn serve(stage: impl Fn() -> i32) -> i32 {
    let control: RawFd = 0;
    // SAFETY: setting a signal's disposition to ignore, in a process with one thread.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    if send_with_fds(control, b"ready", &[]).is_err() {
        eprintln!("oodpipe zygote: stdin is not the engine's control socket (the engine starts this mode itself)");
        return 2;
    }
    let zygote = std::process::id() as libc::pid_t;
    // Each running child's line, by pid; a line whose engine end closed is kept (None) until reaped.
    let mut lines: BTreeMap<libc::pid_t, Option<UnixStream>> = BTreeMap::new();
    loop {
        let mut polled = vec![libc::pollfd { fd: control, events: libc::POLLIN, revents: 0 }];
        let watched: Vec<libc::pid_t> = lines.iter().filter(|(_, l)| l.is_some()).map(|(&p, _)| p).collect();
        for pid in &watched {
            polled.push(libc::pollfd { fd: lines[pid].as_ref().unwrap().as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // A short timeout: children are reaped at the latest 5 ms after they end.
        // SAFETY: `polled` is a valid array of pollfd of its length.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 5) };
        if ready > 0 {
            if polled[0].revents != 0 {
                match receive(control) {
                    Ok(None) => break,
                    Ok(Some((env, fds))) => {
                        if let Some((pid, line)) = fork_child(zygote, &lines, &env, fds, &stage) {
                            lines.insert(pid, Some(line));
                        }
                    }
                    Err(e) => eprintln!("oodpipe zygote: a bad fork request: {e:#}"),
                }
            }
            for (i, pid) in watched.iter().enumerate() {
                if polled[i + 1].revents != 0 {
                    serve_line(*pid, lines.get_mut(pid).unwrap());
                }
            }
        }
        // Reap every child that ended and tell its line.
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if let Some(Some(mut line)) = lines.remove(&pid) {
                let _ = line.write_all(format!("exit {status}\n").as_bytes());
            }
        }
    }
    // The engine is gone: so are the children still running (their parent-death signal), once we exit.
    0
}

/// Ends a worker process once its stage is done: flushes stdout and stderr and calls `_exit`, not
/// `exit`. The stage's files are written and closed by then; what `exit` would add are the C++
/// static destructors, and libtorch's undo its operator registry one operator at a time: 0.1-0.3 s
/// of every stage here (in a forked worker, each of those writes also copies a page it shares
/// with the zygote).
pub fn exit_at_once(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process; nothing is left to run.
    unsafe { libc::_exit(code) }
}

/// Reads the engine's commands on a child's line: `kill <signal>`; its end of file kills the child.
fn serve_line(pid: libc::pid_t, line: &mut Option<UnixStream>) {
    let Some(stream) = line.as_mut() else { return };
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => {
            // SAFETY: `pid` is our child, not yet reaped (its entry is removed when it is).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            *line = None;
        }
        Ok(n) => {
            for command in String::from_utf8_lossy(&buf[..n]).lines() {
                if let Some(signal) = command.trim().strip_prefix("kill ").and_then(|s| s.parse::<i32>().ok()) {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, signal) };
                }
            }
        }
    }
}

/// Forks the child of one request; the zygote's copies of its pipes close here.
fn fork_child(
    zygote: libc::pid_t,
    lines: &BTreeMap<libc::pid_t, Option<UnixStream>>,
    env: &[u8],
    fds: Vec<OwnedFd>,
    stage: &impl Fn() -> i32,
) -> Option<(libc::pid_t, UnixStream)> {
    let Ok::<[OwnedFd; FDS], _>([line, stdin, stdout, stderr]) = fds.try_into() else {
        eprintln!("oodpipe zygote: a fork request without its {FDS} file descriptors");
        return None;
    };
    let gpu = serde_json::from_slice::<serde_json::Value>(env).ok().and_then(|v| v["gpu"].as_str().map(String::from));
    let mut line = UnixStream::from(line);
    // SAFETY: the zygote has one thread; the child only uses its own memory and fds until it runs
    // the stage, exactly as a freshly started worker would.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let _ = line.write_all(format!("error fork: {}\n", std::io::Error::last_os_error()).as_bytes());
        return None;
    }
    if pid == 0 {
        // The child: its pipes become its standard streams (the first replacing the control
        // socket, fd 0); nothing of the zygote stays open.
        unsafe {
            libc::dup2(stdin.as_raw_fd(), 0);
            libc::dup2(stdout.as_raw_fd(), 1);
            libc::dup2(stderr.as_raw_fd(), 2);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != zygote {
                libc::_exit(1);
            }
        }
        drop((stdin, stdout, stderr, line));
        for other in lines.values().flatten() {
            unsafe { libc::close(other.as_raw_fd()) };
        }
        if let Some(gpu) = gpu {
            // SAFETY: the child has one thread.
            unsafe { std::env::set_var("CUDA_VISIBLE_DEVICES", gpu) };
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(stage)).unwrap_or(101);
        exit_at_once(code);
    }
    drop((stdin, stdout, stderr));
    let _ = line.write_all(format!("pid {pid}\n").as_bytes());
    Some((pid, line))
}

/// One control record and its fds, or `None` at the end of the control socket.
fn receive(control: RawFd) -> anyhow::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut data = vec![0u8; RECORD];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cmsg = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(control, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            // A reset control socket is its end, too.
            if e.raw_os_error() == Some(libc::ECONNRESET) {
                return Ok(None);
            }
            return Err(e).context("reading a control record");
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `cmsg`.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let first = libc::CMSG_DATA(header) as *const RawFd;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(first.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        bail!("a truncated control record");
    }
    Ok(Some((data[..n].to_vec(), fds)))
}

/// One record on a `SOCK_SEQPACKET` socket, with `fds` as `SCM_RIGHTS` if there are any.
fn send_with_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let mut cmsg = vec![0u8; unsafe { libc::CMSG_SPACE(bytes as u32) } as usize];
    if !fds.is_empty() {
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len() as _;
        // SAFETY: the buffer holds one header and `bytes` of data, as CMSG_SPACE computed.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), bytes);
        }
    }
    loop {
        // SAFETY: msg points at live buffers of the lengths it states.
        let n = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A record from the control socket, waiting at most `timeout`.
fn recv_timeout(socket: &OwnedFd, buf: &mut [u8], timeout: Duration) -> anyhow::Result<usize> {
    let mut polled = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut polled, 1, timeout.as_millis() as i32) };
    if ready == 0 {
        bail!("no answer in {} s", timeout.as_secs());
    }
    // SAFETY: `buf` is valid for its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if n == 0 {
        bail!("it ended without answering");
    }
    Ok(n as usize)
}

/// A Unix socket pair of `kind`, both ends close-on-exec.
fn socket_pair(kind: i32) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
