//! CPU time and resident memory of a process, from `/proc` (Linux). On
//! other systems, or when the process is gone, the samples are `None`.

use serde::{Deserialize, Serialize};

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// User + system CPU time since the process started, in seconds.
    pub cpu_s: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/statm`
/// (resident pages). `None` when either cannot be read or parsed.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcSample {
        cpu_s: ticks as f64 / clock_ticks_per_sec(),
        rss_bytes: pages.saturating_mul(page_size()),
    })
}

/// This process's own counters.
pub fn sample_self() -> Option<ProcSample> {
    sample(std::process::id())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces, so fields
/// are counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")": field 3 (state) is index 0, so utime (14) is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// CPU and memory of a process over one measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcUsage {
    /// CPU seconds spent in the window.
    pub cpu_s: f64,
    /// Average cores busy: `cpu_s / window`.
    pub cpu_cores: f64,
    /// Largest RSS seen in the window's samples, MiB.
    pub rss_max_mib: f64,
    /// RSS at the end of the window, MiB.
    pub rss_end_mib: f64,
}

impl ProcUsage {
    /// From the first and last sample of a window of `window_s` seconds,
    /// with `rss_max` the largest RSS sampled in between.
    pub fn between(first: ProcSample, last: ProcSample, rss_max: u64, window_s: f64) -> Self {
        let cpu_s = (last.cpu_s - first.cpu_s).max(0.0);
        let mib = |b: u64| b as f64 / 1048576.0;
        Self {
            cpu_s,
            cpu_cores: if window_s > 0.0 {
                cpu_s / window_s
            } else {
                0.0
            },
            rss_max_mib: mib(rss_max.max(last.rss_bytes).max(first.rss_bytes)),
            rss_end_mib: mib(last.rss_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 4 0 100 1000000 300 18446744073709551615";
        assert_eq!(cpu_ticks(line), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        if cfg!(target_os = "linux") {
            let s = sample_self().expect("own /proc entry");
            assert!(s.rss_bytes > 0);
        }
    }

    #[test]
    fn usage_between_samples() {
        let a = ProcSample {
            cpu_s: 1.0,
            rss_bytes: 1 << 20,
        };
        let b = ProcSample {
            cpu_s: 3.0,
            rss_bytes: 2 << 20,
        };
        let u = ProcUsage::between(a, b, 4 << 20, 4.0);
        assert_eq!(u.cpu_s, 2.0);
        assert_eq!(u.cpu_cores, 0.5);
        assert_eq!(u.rss_max_mib, 4.0);
        assert_eq!(u.rss_end_mib, 2.0);
    }
}
