//! Log relays: the app's log files that the image links to `/dev/stdout` or `/dev/stderr`
//! reach the container's stdout and stderr.
//!
//! Gramine refuses host FIFOs, so a log file linked to the container's stdout (a pipe)
//! cannot be opened inside the enclave; a character device can (see the engine's
//! `gramine::log_links`). For each of stdout and stderr the launcher opens a
//! pseudo-terminal in raw mode (no echo, no `\n` → `\r\n`), puts its slave on the fixed
//! descriptor of [`LOG_RELAYS`] (inherited by Gramine's loader and its processes; the kiln
//! layer's `/opt/kiln/logs/stdout` links to `/proc/self/fd/61`), and forks a small relay
//! process that copies the master to its own stdout or stderr until every slave is closed
//! (the app has exited). The relay ignores the signals a terminal or `docker stop` send, so
//! the app's last lines still get out; it stops on its own when the app is gone.

use std::io;
use std::time::{Duration, Instant};

use crate::config::LOG_RELAYS;

/// A running relay process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Its process ID.
    pub pid: libc::pid_t,
}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens one pseudo-terminal in raw mode: (master, slave), both close-on-exec.
fn open_pty() -> io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: plain libc calls on descriptors this function owns; `name` is a valid
    // buffer of the length passed, and `tio` a valid out-pointer.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(last_error("posix_openpt"));
        }
        if libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            let e = last_error("unlockpt");
            libc::close(master);
            return Err(e);
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(master, name.as_mut_ptr(), name.len()) != 0 {
            let e = last_error("ptsname");
            libc::close(master);
            return Err(e);
        }
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            let e = last_error("open pty slave");
            libc::close(master);
            return Err(e);
        }
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave, &mut tio) == 0 {
            libc::cfmakeraw(&mut tio);
            libc::tcsetattr(slave, libc::TCSANOW, &tio);
        }
        Ok((master, slave))
    }
}

/// Starts the relays: after it returns, descriptors 61 and 62 of this process are the
/// slaves (without close-on-exec, so the loader inherits them), and the relay process
/// copies what is written there to this process's stdout and stderr.
pub fn start() -> io::Result<Relay> {
    let mut masters = Vec::with_capacity(LOG_RELAYS.len());
    for (i, (_, fd)) in LOG_RELAYS.iter().enumerate() {
        let (master, slave) = match open_pty() {
            Ok(p) => p,
            Err(e) => {
                close_all(&masters);
                return Err(e);
            }
        };
        // SAFETY: dup2 onto a fixed descriptor number; the new descriptor has no
        // close-on-exec flag, which is the point.
        let rc = unsafe { libc::dup2(slave, *fd) };
        // SAFETY: `slave` is ours and no longer needed under its old number.
        unsafe { libc::close(slave) };
        if rc < 0 {
            close_all(&masters);
            return Err(last_error("dup2"));
        }
        // stdout for the first relay, stderr for the second.
        masters.push((master, if i == 0 { 1 } else { 2 }));
    }
    // SAFETY: the launcher is single-threaded here; the child only calls async-signal-safe
    // functions (signal, close, poll, read, write, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        close_all(&masters);
        return Err(last_error("fork"));
    }
    if pid == 0 {
        relay(&masters);
    }
    close_all(&masters);
    Ok(Relay { pid })
}

fn close_all(masters: &[(libc::c_int, libc::c_int)]) {
    for (m, _) in masters {
        // SAFETY: closing descriptors this module opened.
        unsafe { libc::close(*m) };
    }
}

/// The relay process: copies each master to its output until it reports EOF or EIO (no
/// slave left open), then exits.
fn relay(masters: &[(libc::c_int, libc::c_int)]) -> ! {
    // SAFETY: only async-signal-safe calls, on descriptors of this process.
    unsafe {
        for sig in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGPIPE,
            libc::SIGWINCH,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        for (_, fd) in LOG_RELAYS {
            libc::close(fd);
        }
        let mut fds: Vec<libc::pollfd> = masters
            .iter()
            .map(|(m, _)| libc::pollfd {
                fd: *m,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut buf = [0u8; 16 * 1024];
        let mut open = fds.len();
        while open > 0 {
            let n = libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1);
            if n < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            for (i, p) in fds.iter_mut().enumerate() {
                if p.fd < 0 || p.revents == 0 {
                    continue;
                }
                let got = libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len());
                if got > 0 {
                    write_all(masters[i].1, &buf[..got as usize]);
                } else if got == 0
                    || (*libc::__errno_location() != libc::EINTR
                        && *libc::__errno_location() != libc::EAGAIN)
                {
                    // EIO: the last slave was closed.
                    libc::close(p.fd);
                    p.fd = -1;
                    open -= 1;
                }
            }
        }
        libc::_exit(0)
    }
}

fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            return;
        }
    }
}

/// Closes this process's slaves and waits up to `limit` for the relay to copy what is left
/// and exit (it may already have been reaped elsewhere).
pub fn finish(relay: Relay, limit: Duration) {
    for (_, fd) in LOG_RELAYS {
        // SAFETY: closing the slave descriptors `start` placed.
        unsafe { libc::close(fd) };
    }
    let end = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(relay.pid, &mut status, libc::WNOHANG) };
        if rc != 0 || Instant::now() >= end {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_pty_carries_bytes_unchanged() {
        let (master, slave) = open_pty().expect("pty");
        let msg = b"line one\nline two\n";
        // SAFETY: valid descriptors and buffers.
        unsafe {
            assert_eq!(
                libc::write(slave, msg.as_ptr().cast(), msg.len()),
                msg.len() as isize
            );
            libc::close(slave);
            let mut buf = [0u8; 64];
            let n = libc::read(master, buf.as_mut_ptr().cast(), buf.len());
            assert_eq!(&buf[..n as usize], msg, "no \\r added, no echo");
            // No slave left: EIO (or EOF), which ends a relay.
            let n = libc::read(master, buf.as_mut_ptr().cast(), buf.len());
            assert!(n <= 0);
            libc::close(master);
        }
    }
}
