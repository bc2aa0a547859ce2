//! Skipped cases are counted, not only printed: libtest hides a passing test's stderr, so a
//! case that returns early against a real agent would otherwise vanish from every report.
//!
//! [`record`] prints the note and, when `CONSUL_KV_SKIP_LOG` names a file (`cargo xtask ci`
//! sets it), appends one line `case<TAB>why` to it; `cargo xtask ci` prints the count and the
//! cases at the end.

use std::io::Write as _;

/// The variable naming the file skipped cases are appended to.
pub const SKIP_LOG_VAR: &str = "CONSUL_KV_SKIP_LOG";

/// Records that `case` was skipped because of `why`.
pub fn record(case: &str, why: &str) {
    eprintln!("note: {case}: skipped: {why}");
    let Some(path) = std::env::var_os(SKIP_LOG_VAR) else {
        return;
    };
    let line = format!("{case}\t{}\n", why.replace(['\t', '\n'], " "));
    // One short append per line: concurrent test processes do not interleave within it.
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        Err(e) => eprintln!("note: cannot record the skip in {path:?}: {e}"),
    }
}
