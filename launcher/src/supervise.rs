//! The supervising launcher of direct mode: spawns Gramine's direct PAL, forwards signals,
//! reaps children, rehearses the enclave's limits ([`crate::rehearsal`]) and exits with the
//! app's status.
//!
//! - Signals: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are forwarded
//!   to the child (the PAL process, which is the app's first process). The launcher is the
//!   container's PID 1 here, and the kernel drops signals that PID 1 has left at their
//!   default action; so they get a (no-op) handler, are blocked together with SIGCHLD before
//!   the child is spawned (none is lost in between) and are taken synchronously with
//!   `sigtimedwait`. The child starts with an empty mask (set between fork and exec: the
//!   mask is inherited across exec, and std's `Command` does not reset it) and default
//!   handlers (exec resets caught signals). Signals the kernel itself sent (`si_code` =
//!   `SI_KERNEL`: a terminal's Ctrl-C, Ctrl-\\, resize or hangup) are not forwarded: the
//!   terminal sends them to its whole foreground process group, which holds the child too
//!   (the launcher does not give it a group of its own), so forwarding would deliver them
//!   twice. Signals from `kill` (`docker stop`, `docker kill -s`) are forwarded.
//! - Reaping: every child of the launcher is reaped (`waitpid(-1, WNOHANG)`), including
//!   orphans re-parented to it: as PID 1 it gets them anyway, elsewhere it makes itself a
//!   child subreaper (`PR_SET_CHILD_SUBREAPER`).
//! - Exit: when the PAL process ends, the launcher exits with its exit code, or 128 + the
//!   signal that killed it (the shell's rule); processes it left behind die with the
//!   container (PID 1 exits).
//! - Rehearsal: about every 100 ms, when limits are known and `KILN_REHEARSAL` is not
//!   `off`. `/proc/PID/task/TID/children` would give the tree directly but needs
//!   `CONFIG_PROC_CHILDREN`, which not every kernel has; so the launcher reads `/proc/N/stat`
//!   (a short line) of each process in its PID namespace for the parent PIDs, and
//!   `/proc/N/status` only for the processes of its own tree.
//!
//! Write errors on stderr are ignored (never a panic that would orphan the app).

use crate::rehearsal::{
    parse_stat_ppid, parse_status, shell_status, RehearsalMode, Sample, Supervision, Watch,
    STRICT_EXIT,
};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The signals forwarded to the app.
pub const FORWARDED: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// How often `/proc` is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

extern "C" fn no_op(_: libc::c_int) {}

/// Installs the no-op handlers and blocks the forwarded signals and SIGCHLD; returns the
/// blocked set for `sigtimedwait`.
fn take_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: plain libc calls on local, initialised structs. `sigemptyset` initialises the
    // set; `sigaction` installs `no_op`, an `extern "C"` function that does nothing (async-
    // signal-safe); `pthread_sigmask` only changes this thread's mask (the launcher has one
    // thread).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FORWARDED.iter().copied().chain([libc::SIGCHLD]) {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = no_op as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::sigaddset(&mut set, sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Waits up to `timeout` for one of `set`; returns the signal and its `si_code`, or `None`
/// on timeout or interruption.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<(libc::c_int, libc::c_int)> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `set` is an initialised signal set, `ts` a valid timespec, `info` a writable
    // siginfo_t (zeroed is a valid bit pattern for it).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let sig = unsafe { libc::sigtimedwait(set, &mut info, &ts) };
    (sig > 0).then_some((sig, info.si_code))
}

/// Whether a received signal is passed on to the child: every forwarded signal except
/// those the kernel sent itself (`SI_KERNEL`, i.e. from the terminal to the whole
/// foreground process group, which the child already got).
pub fn should_forward(sig: libc::c_int, si_code: libc::c_int) -> bool {
    FORWARDED.contains(&sig) && si_code != libc::SI_KERNEL
}

/// Sends `sig` to `pid`; a process that is already gone is not an error here.
fn send(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Reaps every exited child; returns the wait status of `main` if it was among them.
fn reap(main: i32) -> Option<libc::c_int> {
    let mut main_status = None;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return main_status;
        }
        if pid == main {
            main_status = Some(status);
        }
    }
}

/// The launcher's exit status for a wait status.
fn exit_code(status: libc::c_int) -> i32 {
    let exited = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let signaled = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    shell_status(exited, signaled)
}

/// The PIDs of the launcher's process tree (without itself), from `/proc`.
fn tree(me: i32) -> std::io::Result<Vec<i32>> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process may end between the listing and the read: skip it.
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat_ppid)
        {
            parents.push((pid, ppid));
        }
    }
    Ok(crate::rehearsal::descendants(me, &parents))
}

/// One poll: the status of every process in the tree.
fn snapshot(me: i32) -> std::io::Result<Vec<Sample>> {
    Ok(tree(me)?
        .into_iter()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            Some(Sample {
                pid,
                status: parse_status(&text),
            })
        })
        .collect())
}

/// SIGKILL to the whole tree, repeated a few times to catch processes forked meanwhile.
fn kill_tree(me: i32, main: i32) -> usize {
    send(main, libc::SIGKILL);
    let mut killed = vec![main];
    for _ in 0..3 {
        let Ok(pids) = tree(me) else { break };
        for pid in pids {
            send(pid, libc::SIGKILL);
            if !killed.contains(&pid) {
                killed.push(pid);
            }
        }
    }
    killed.len()
}

/// Spawns `program` (argv\[0\] = `program`) with `args` and supervises it until it ends;
/// returns the launcher's exit status.
pub fn run(program: &Path, args: &[OsString], supervision: Supervision) -> i32 {
    let set = match take_signals() {
        Ok(s) => s,
        Err(e) => {
            say(&format!(
                "kiln-launcher: cannot set up signal forwarding: {e}"
            ));
            return 1;
        }
    };
    // SAFETY: getpid has no memory effects; prctl with PR_SET_CHILD_SUBREAPER takes an
    // integer argument.
    let me = unsafe { libc::getpid() };
    if me != 1 {
        // SAFETY: as above.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
        }
    }
    let mut command = Command::new(program);
    command.arg0(program).args(args);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigemptyset and pthread_sigmask on a local set, both async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            match libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) {
                0 => Ok(()),
                rc => Err(std::io::Error::from_raw_os_error(rc)),
            }
        });
    }
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(&format!(
                "kiln-launcher: cannot start {}: {e}",
                program.display()
            ));
            return 127;
        }
    };
    let main = match i32::try_from(child.id()) {
        Ok(pid) => pid,
        Err(_) => {
            say("kiln-launcher: child PID out of range");
            return 1;
        }
    };
    // The child is reaped with waitpid below, never through `child`.
    drop(child);

    let mut watch = match supervision.limits {
        Some(limits) if supervision.watches() => Some(Watch::new(limits)),
        _ => None,
    };
    let mut next_poll = Instant::now();
    let mut stopped = false;
    loop {
        if let Some(status) = reap(main) {
            if stopped {
                return STRICT_EXIT;
            }
            if let Some(line) = watch.as_ref().and_then(Watch::summary) {
                say(&line);
            }
            return exit_code(status);
        }
        let now = Instant::now();
        if let (Some(w), false) = (watch.as_mut(), stopped) {
            if now >= next_poll {
                match snapshot(me) {
                    Ok(samples) => {
                        for finding in w.observe(&samples) {
                            say(&finding.to_string());
                        }
                        if w.exceeded() && supervision.mode == RehearsalMode::Strict {
                            stopped = true;
                            let n = kill_tree(me, main);
                            say(&format!(
                                "kiln-launcher: REHEARSAL: KILN_REHEARSAL=strict: stopped the app \
                                 (SIGKILL to {n} process{}) because it exceeds the enclave's \
                                 limits; exit status {STRICT_EXIT}",
                                if n == 1 { "" } else { "es" }
                            ));
                        }
                    }
                    Err(e) => {
                        say(&format!(
                            "kiln-launcher: REHEARSAL: cannot read /proc ({e}): threads and \
                             memory are not checked"
                        ));
                        watch = None;
                    }
                }
                next_poll = now + POLL_INTERVAL;
            }
        }
        let timeout = if watch.is_some() && !stopped {
            next_poll.saturating_duration_since(Instant::now())
        } else {
            // SIGCHLD wakes the loop when a child ends; the timeout is only a safety net.
            Duration::from_secs(1)
        };
        if let Some((sig, code)) = wait_signal(&set, timeout) {
            if !stopped && should_forward(sig, code) {
                send(main, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_sent_signals_not_terminal_ones() {
        for sig in FORWARDED {
            assert!(should_forward(sig, libc::SI_USER), "{sig}");
            assert!(should_forward(sig, libc::SI_QUEUE), "{sig}");
            assert!(!should_forward(sig, libc::SI_KERNEL), "{sig}");
        }
        assert!(!should_forward(libc::SIGCHLD, libc::SI_USER));
        assert!(!should_forward(libc::SIGKILL, libc::SI_USER));
    }
}
