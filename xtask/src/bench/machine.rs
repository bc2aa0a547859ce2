//! The machine a report was measured on: CPU, memory, OS, toolchain versions, load, date.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::build::{tool_version, Contender};

#[derive(Debug, Clone, Default)]
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu: String,
    pub(super) memory: String,
    pub(super) load: String,
    pub(super) rustc: String,
    pub(super) date: String,
    pub(super) versions: Vec<(String, String)>,
}

impl Machine {
    pub(super) fn read(_root: &Path, contenders: &[Contender]) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(String::new, |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
        let load = load_average();
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            load,
            rustc: tool_version("rustc", &["--version"]).unwrap_or_default(),
            date: today(),
            versions: contenders
                .iter()
                .map(|c| (c.name.to_owned(), c.version.clone()))
                .collect(),
        }
    }

    pub(super) fn line(&self) -> String {
        format!(
            "{} cores ({}), {} RAM, Linux; {}; load average at the end {}",
            self.cores, self.cpu, self.memory, self.rustc, self.load
        )
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
pub(super) fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The 1, 5 and 15 minute load averages as `/proc/loadavg` gives them, or `unknown`.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert_eq!(d.as_bytes()[4], b'-');
        assert_eq!(d.as_bytes()[7], b'-');
    }
}
