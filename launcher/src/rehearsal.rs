//! The rehearsal of the enclave's limits in direct mode: the pure part.
//!
//! Under `KILN_INSECURE_NO_SGX=1` the app runs under Gramine's direct-mode PAL, which
//! enforces neither `sgx.max_threads` nor `sgx.enclave_size`: an app that fits there may
//! fail under SGX, silently until deployment. So in direct mode the launcher does not exec
//! the PAL but spawns it and supervises it ([`crate::supervise`]): it forwards signals,
//! reaps children and, about every 100 ms, reads `/proc` for each process of the app's tree
//! and compares it with the limits in `launcher.json` (`enclave`, see [`crate::config`]):
//!
//! - threads: `Threads:` of `/proc/PID/status` against `sgx.max_threads`. Under SGX every
//!   process is its own enclave with that many thread slots (TCSs); Gramine's own helper
//!   threads (IPC, async events, and under SGX one TLS-handshake thread per pipe connect)
//!   take slots too, which is why the suggestion adds [`HELPER_SLOTS`] spare slots;
//! - memory: `VmPeak:` (the highest `VmSize:`, so a peak between two polls still counts)
//!   against `sgx.enclave_size`, the address space each SGX1 process has for everything it
//!   maps (code, heap, thread stacks, glibc arenas, Gramine itself). The suggestion is the
//!   next power of two (Gramine refuses other sizes) at or above the peak plus 1/8.
//!
//! Each limit is reported once per run (the first process to exceed it, one line on
//! stderr, at once); when the app ends, one more line gives the peaks seen and the sizes
//! to convert with. With `KILN_REHEARSAL=strict` the first excess stops the app (SIGKILL
//! to its process tree) and the launcher exits [`STRICT_EXIT`].
//!
//! Everything here is a pure function of text read from `/proc`, so it is unit-tested
//! without processes; the measurements themselves are tested under runc
//! (launcher/tests/runc.rs).

use crate::config::EnclaveLimits;
use std::fmt;

/// Spare thread slots the threads suggestion adds for Gramine's own helper threads.
pub const HELPER_SLOTS: u32 = 4;

/// The launcher's exit status after strict mode stopped the app (128 + SIGKILL, as a
/// shell reports a process killed by SIGKILL).
pub const STRICT_EXIT: i32 = 137;

/// How the rehearsal reacts to an app that exceeds the enclave's limits
/// ([`crate::facts::REHEARSAL_ENV`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RehearsalMode {
    /// Unset or `warn`: one line per exceeded limit, the app keeps running.
    Warn,
    /// `strict`: the line, then the app's process tree is killed; exit [`STRICT_EXIT`].
    Strict,
    /// `off`: no watching (signals are still forwarded and children reaped).
    Off,
}

impl RehearsalMode {
    /// Interprets the variable's value; `Err` holds the value (anything else is refused,
    /// so a typo of `strict` does not silently mean `warn`).
    pub fn from_env(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("") | Some("warn") => Ok(RehearsalMode::Warn),
            Some("strict") => Ok(RehearsalMode::Strict),
            Some("off") => Ok(RehearsalMode::Off),
            Some(other) => Err(other.to_owned()),
        }
    }
}

/// What the supervising launcher watches in direct mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// The enclave's limits; `None` when the configuration names none (older converter).
    pub limits: Option<EnclaveLimits>,
    /// How to react to an excess.
    pub mode: RehearsalMode,
}

impl Supervision {
    /// Whether `/proc` is polled at all.
    pub fn watches(&self) -> bool {
        self.limits.is_some() && self.mode != RehearsalMode::Off
    }

    /// The line printed before the app starts, saying what is watched.
    pub fn describe(&self) -> String {
        match (self.limits, self.mode) {
            (_, RehearsalMode::Off) => {
                "kiln-launcher: REHEARSAL: off (KILN_REHEARSAL=off): threads and memory are not \
                 checked against the enclave's limits"
                    .to_owned()
            }
            (None, _) => "kiln-launcher: REHEARSAL: launcher.json names no enclave limits \
                          (converted by an older kiln): threads and memory are not checked"
                .to_owned(),
            (Some(l), mode) => format!(
                "kiln-launcher: REHEARSAL: every process of the app is checked against the \
                 enclave's limits: {} threads (sgx.max_threads), {} of memory \
                 (sgx.enclave_size){}",
                l.max_threads,
                mib(l.enclave_size),
                if mode == RehearsalMode::Strict {
                    "; KILN_REHEARSAL=strict: the app is stopped when it exceeds one"
                } else {
                    ""
                }
            ),
        }
    }
}

/// The fields of `/proc/PID/status` the rehearsal reads. Absent fields are `None` (kernel
/// threads and zombies have no `Vm*` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Name:` (the comm, at most 15 bytes; control characters replaced by `?`).
    pub name: String,
    /// `Threads:`.
    pub threads: Option<u32>,
    /// `VmSize:` in bytes.
    pub vm_size: Option<u64>,
    /// `VmPeak:` in bytes.
    pub vm_peak: Option<u64>,
}

impl ProcStatus {
    /// The memory figure compared with the enclave size: `VmPeak`, else `VmSize`.
    pub fn memory(&self) -> Option<u64> {
        self.vm_peak.or(self.vm_size)
    }
}

/// Parses the text of `/proc/PID/status`. Lines it does not know, and values it cannot
/// read, are skipped (never a panic: the text comes from a process the app controls the
/// name of).
pub fn parse_status(text: &str) -> ProcStatus {
    let mut s = ProcStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Name" => {
                s.name = value
                    .strip_prefix('\t')
                    .unwrap_or(value)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect()
            }
            "Threads" => s.threads = value.trim().parse().ok(),
            "VmSize" => s.vm_size = kib(value),
            "VmPeak" => s.vm_peak = kib(value),
            _ => {}
        }
    }
    s
}

/// `"   61100 kB"` in bytes.
fn kib(value: &str) -> Option<u64> {
    let n: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    n.checked_mul(1024)
}

/// The parent PID from the text of `/proc/PID/stat`: the second field after the comm,
/// which is in parentheses and may itself hold spaces and `)`, so the fields are read after
/// the last `)`.
pub fn parse_stat_ppid(text: &str) -> Option<i32> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// The PIDs descending from `root` (not `root` itself), given `(pid, ppid)` pairs, sorted.
/// Cycles (impossible in `/proc`, possible in bad input) cannot loop.
pub fn descendants(root: i32, parents: &[(i32, i32)]) -> Vec<i32> {
    let mut found: Vec<i32> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in parents {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found.sort_unstable();
    found
}

/// One process as seen in one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its PID (in the launcher's PID namespace).
    pub pid: i32,
    /// Its parsed status.
    pub status: ProcStatus,
}

/// Which limit a process exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `sgx.max_threads`.
    Threads,
    /// `sgx.enclave_size`.
    Memory,
}

/// One process exceeding one limit. `Display` is the stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which limit.
    pub limit: Limit,
    /// The process.
    pub pid: i32,
    /// Its comm.
    pub name: String,
    /// Threads, or bytes of virtual memory.
    pub measured: u64,
    /// The limit (threads, or bytes).
    pub allowed: u64,
}

impl Finding {
    /// What to convert with: `threads` for [`Limit::Threads`], `memSize` bytes for
    /// [`Limit::Memory`].
    pub fn suggestion(&self) -> u64 {
        match self.limit {
            Limit::Threads => u64::from(suggest_threads(
                u32::try_from(self.measured).unwrap_or(u32::MAX),
            )),
            Limit::Memory => suggest_mem_size(self.measured),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Limit::Threads => write!(
                f,
                "kiln-launcher: REHEARSAL: process {} ({}) runs {} threads; the enclave allows \
                 {} (sgx.max_threads): convert with \"threads\": {} or more (Gramine's own \
                 helper threads also need slots under SGX)",
                self.pid,
                self.name,
                self.measured,
                self.allowed,
                self.suggestion()
            ),
            Limit::Memory => write!(
                f,
                "kiln-launcher: REHEARSAL: process {} ({}) maps {} of virtual memory (VmPeak); \
                 the enclave holds {} (sgx.enclave_size): convert with \"memSize\": \"{}\" or \
                 more (a power of two; the enclave also holds Gramine and every thread's stack)",
                self.pid,
                self.name,
                mib(self.measured),
                mib(self.allowed),
                mem_size_text(self.suggestion())
            ),
        }
    }
}

/// `threads` to convert with for an app that ran `measured` threads in one process:
/// `measured` + [`HELPER_SLOTS`], rounded up to a multiple of 4 (11 → 16).
pub fn suggest_threads(measured: u32) -> u32 {
    measured.saturating_add(HELPER_SLOTS).saturating_add(3) / 4 * 4
}

/// `memSize` bytes to convert with for a process that mapped `bytes`: the next power of two
/// at or above `bytes` + `bytes`/8 (622 MiB → 1 GiB), at most 2^63.
pub fn suggest_mem_size(bytes: u64) -> u64 {
    bytes
        .saturating_add(bytes / 8)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63)
}

/// A power-of-two size as a `memSize` value: `"1G"`, `"512M"`, `"64K"`, or bytes.
pub fn mem_size_text(bytes: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Bytes as whole MiB, rounded up (`"622 MiB"`).
fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

/// The highest value of one figure seen so far, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peak {
    pid: i32,
    name: String,
    value: u64,
}

/// The rehearsal's state over a run: which limits were reported, and the peaks.
#[derive(Debug, Clone)]
pub struct Watch {
    limits: EnclaveLimits,
    threads: Option<Peak>,
    memory: Option<Peak>,
    reported_threads: bool,
    reported_memory: bool,
}

impl Watch {
    /// A watch against `limits`, nothing seen yet.
    pub fn new(limits: EnclaveLimits) -> Self {
        Watch {
            limits,
            threads: None,
            memory: None,
            reported_threads: false,
            reported_memory: false,
        }
    }

    /// Takes one poll's samples; returns the findings not reported before (at most one per
    /// limit over the whole run).
    pub fn observe(&mut self, samples: &[Sample]) -> Vec<Finding> {
        let mut out = Vec::new();
        for s in samples {
            if let Some(t) = s.status.threads {
                raise(&mut self.threads, s, u64::from(t));
                if !self.reported_threads && t > self.limits.max_threads {
                    self.reported_threads = true;
                    out.push(Finding {
                        limit: Limit::Threads,
                        pid: s.pid,
                        name: s.status.name.clone(),
                        measured: u64::from(t),
                        allowed: u64::from(self.limits.max_threads),
                    });
                }
            }
            if let Some(m) = s.status.memory() {
                raise(&mut self.memory, s, m);
                if !self.reported_memory && m > self.limits.enclave_size {
                    self.reported_memory = true;
                    out.push(Finding {
                        limit: Limit::Memory,
                        pid: s.pid,
                        name: s.status.name.clone(),
                        measured: m,
                        allowed: self.limits.enclave_size,
                    });
                }
            }
        }
        out
    }

    /// Whether any limit was exceeded so far.
    pub fn exceeded(&self) -> bool {
        self.reported_threads || self.reported_memory
    }

    /// The line printed when the app has ended, if a limit was exceeded: the peaks of the
    /// exceeded limits over the whole run and the sizes to convert with.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut fixes = Vec::new();
        if let (true, Some(p)) = (self.reported_threads, &self.threads) {
            parts.push(format!(
                "{} threads in process {} ({})",
                p.value, p.pid, p.name
            ));
            fixes.push(format!(
                "\"threads\": {}",
                suggest_threads(u32::try_from(p.value).unwrap_or(u32::MAX))
            ));
        }
        if let (true, Some(p)) = (self.reported_memory, &self.memory) {
            parts.push(format!(
                "{} in process {} ({})",
                mib(p.value),
                p.pid,
                p.name
            ));
            fixes.push(format!(
                "\"memSize\": \"{}\"",
                mem_size_text(suggest_mem_size(p.value))
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "kiln-launcher: REHEARSAL: this run exceeded the enclave's limits; peaks: {}: \
                 convert with {} or more before running it under SGX",
                parts.join(", "),
                fixes.join(", ")
            )
        })
    }
}

fn raise(peak: &mut Option<Peak>, s: &Sample, value: u64) {
    if peak.as_ref().is_none_or(|p| value > p.value) {
        *peak = Some(Peak {
            pid: s.pid,
            name: s.status.name.clone(),
            value,
        });
    }
}

/// The launcher's exit status for a child that ended: its exit code, or 128 + the signal
/// that killed it (the shell's rule). `exited`/`signaled` are the decoded wait status.
pub fn shell_status(exited: Option<i32>, signaled: Option<i32>) -> i32 {
    match (exited, signaled) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real status file (Linux 6.x), python3 with 11 threads.
    const STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\n\
        Ngid:\t0\nPid:\t42\nPPid:\t1\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n\
        VmPeak:\t  636928 kB\nVmSize:\t  610304 kB\nVmLck:\t       0 kB\nVmRSS:\t   30000 kB\n\
        Threads:\t11\nSigQ:\t0/62912\n";

    fn limits() -> EnclaveLimits {
        EnclaveLimits {
            max_threads: 4,
            enclave_size: 256 << 20,
        }
    }

    fn sample(pid: i32, name: &str, threads: u32, peak_kib: u64) -> Sample {
        Sample {
            pid,
            status: ProcStatus {
                name: name.into(),
                threads: Some(threads),
                vm_size: Some(peak_kib * 1024),
                vm_peak: Some(peak_kib * 1024),
            },
        }
    }

    #[test]
    fn parses_status() {
        let s = parse_status(STATUS);
        assert_eq!(s.name, "python3");
        assert_eq!(s.threads, Some(11));
        assert_eq!(s.vm_peak, Some(636928 * 1024));
        assert_eq!(s.vm_size, Some(610304 * 1024));
        assert_eq!(s.memory(), Some(636928 * 1024));
    }

    #[test]
    fn status_of_zombie_and_garbage() {
        let z = parse_status("Name:\tsh\nState:\tZ (zombie)\nThreads:\t1\n");
        assert_eq!(z.threads, Some(1));
        assert_eq!(z.memory(), None);
        let g = parse_status(
            "Name:\tev\u{7}il\u{1b}[2J\nThreads:\tmany\nVmPeak:\t99999999999999999999 kB\n\
             VmSize:\t12 MB\n\u{0}\n:::\n",
        );
        assert_eq!(g.name, "ev?il?[2J");
        assert_eq!(
            g,
            ProcStatus {
                name: g.name.clone(),
                ..Default::default()
            }
        );
        assert_eq!(parse_status(""), ProcStatus::default());
        // VmSize only (no VmPeak): used as the memory figure.
        let v = parse_status("VmSize:\t 4 kB\n");
        assert_eq!(v.memory(), Some(4096));
        // Overflowing kB count is dropped, not wrapped.
        assert_eq!(
            parse_status("VmPeak:\t18446744073709551615 kB\n").vm_peak,
            None
        );
    }

    #[test]
    fn parses_stat_ppid_with_odd_comm() {
        assert_eq!(parse_stat_ppid("42 (python3) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_stat_ppid("43 (a) b) (c) R 1 43"), Some(1));
        assert_eq!(parse_stat_ppid("44 (x y) S"), None);
        assert_eq!(parse_stat_ppid("garbage"), None);
        assert_eq!(parse_stat_ppid("45 (z) S nope"), None);
        assert_eq!(parse_stat_ppid(""), None);
    }

    #[test]
    fn walks_the_tree() {
        let parents = [(2, 1), (3, 2), (4, 3), (5, 9), (6, 2), (1, 0), (7, 7)];
        assert_eq!(descendants(1, &parents), vec![2, 3, 4, 6]);
        assert_eq!(descendants(3, &parents), vec![4]);
        assert_eq!(descendants(5, &parents), Vec::<i32>::new());
        // A cycle through the root does not loop or include the root.
        assert_eq!(descendants(7, &[(7, 8), (8, 7)]), vec![8]);
    }

    #[test]
    fn mode_from_env() {
        assert_eq!(RehearsalMode::from_env(None), Ok(RehearsalMode::Warn));
        assert_eq!(RehearsalMode::from_env(Some("")), Ok(RehearsalMode::Warn));
        assert_eq!(
            RehearsalMode::from_env(Some("warn")),
            Ok(RehearsalMode::Warn)
        );
        assert_eq!(
            RehearsalMode::from_env(Some("strict")),
            Ok(RehearsalMode::Strict)
        );
        assert_eq!(RehearsalMode::from_env(Some("off")), Ok(RehearsalMode::Off));
        assert_eq!(
            RehearsalMode::from_env(Some("strcit")),
            Err("strcit".into())
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest_threads(11), 16);
        assert_eq!(suggest_threads(5), 12);
        assert_eq!(suggest_threads(12), 16);
        assert_eq!(suggest_threads(13), 20);
        assert_eq!(suggest_threads(u32::MAX), u32::MAX / 4 * 4);
        assert_eq!(suggest_mem_size(622 << 20), 1 << 30);
        assert_eq!(suggest_mem_size(300 << 20), 512 << 20);
        assert_eq!(suggest_mem_size(512 << 20), 1 << 30);
        assert_eq!(suggest_mem_size(u64::MAX), 1 << 63);
        assert_eq!(mem_size_text(1 << 30), "1G");
        assert_eq!(mem_size_text(512 << 20), "512M");
        assert_eq!(mem_size_text(64 << 10), "64K");
        assert_eq!(mem_size_text(1 << 40), "1024G");
        assert_eq!(mem_size_text(512), "512");
    }

    #[test]
    fn reports_each_limit_once_with_the_fix() {
        let mut w = Watch::new(limits());
        assert!(w.observe(&[sample(10, "sh", 1, 2000)]).is_empty());
        assert!(!w.exceeded());
        let f = w.observe(&[sample(10, "sh", 1, 2000), sample(42, "python3", 11, 636928)]);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].to_string(),
            "kiln-launcher: REHEARSAL: process 42 (python3) runs 11 threads; the enclave allows \
             4 (sgx.max_threads): convert with \"threads\": 16 or more (Gramine's own helper \
             threads also need slots under SGX)"
        );
        assert_eq!(
            f[1].to_string(),
            "kiln-launcher: REHEARSAL: process 42 (python3) maps 622 MiB of virtual memory \
             (VmPeak); the enclave holds 256 MiB (sgx.enclave_size): convert with \"memSize\": \
             \"1G\" or more (a power of two; the enclave also holds Gramine and every thread's \
             stack)"
        );
        assert!(w.exceeded());
        // Later and larger excesses, in any process, are not reported again...
        assert!(w
            .observe(&[
                sample(42, "python3", 30, 636928),
                sample(43, "node", 9, 3 << 20)
            ])
            .is_empty());
        // ...but the summary gives the peaks.
        assert_eq!(
            w.summary().unwrap(),
            "kiln-launcher: REHEARSAL: this run exceeded the enclave's limits; peaks: 30 threads \
             in process 42 (python3), 3072 MiB in process 43 (node): convert with \"threads\": \
             36, \"memSize\": \"4G\" or more before running it under SGX"
        );
    }

    #[test]
    fn at_the_limit_is_not_an_excess() {
        let mut w = Watch::new(limits());
        assert!(w.observe(&[sample(5, "app", 4, 256 << 10)]).is_empty());
        assert_eq!(w.summary(), None);
        // Only the exceeded limit appears in the summary.
        let f = w.observe(&[sample(5, "app", 5, 256 << 10)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].limit, Limit::Threads);
        let s = w.summary().unwrap();
        assert!(
            s.contains("\"threads\": 12") && !s.contains("memSize"),
            "{s}"
        );
    }

    #[test]
    fn describes_what_it_watches() {
        let watch = Supervision {
            limits: Some(limits()),
            mode: RehearsalMode::Strict,
        };
        assert!(watch.watches());
        let d = watch.describe();
        assert!(d.contains("4 threads (sgx.max_threads), 256 MiB"), "{d}");
        assert!(d.contains("KILN_REHEARSAL=strict"), "{d}");
        let none = Supervision {
            limits: None,
            mode: RehearsalMode::Warn,
        };
        assert!(!none.watches());
        assert!(none.describe().contains("names no enclave limits"));
        let off = Supervision {
            limits: Some(limits()),
            mode: RehearsalMode::Off,
        };
        assert!(!off.watches());
        assert!(off.describe().contains("off"));
    }

    #[test]
    fn shell_status_rule() {
        assert_eq!(shell_status(Some(0), None), 0);
        assert_eq!(shell_status(Some(3), None), 3);
        assert_eq!(shell_status(None, Some(15)), 143);
        assert_eq!(shell_status(None, Some(9)), 137);
        assert_eq!(shell_status(None, None), 1);
    }
}
