//! README.md's performance section, regenerated from the last report's summary.

use std::path::Path;

use super::{write, README_END, README_START, SUMMARY_END, SUMMARY_START};

/// Rewrites README.md's performance section from `target/bench/report.md`'s summary.
pub(super) fn readme_from_report(root: &Path) -> Result<(), String> {
    let report_path = root.join("target/bench/report.md");
    let report = std::fs::read_to_string(&report_path).map_err(|e| {
        format!(
            "{}: {e} (run `cargo xtask bench` first)",
            report_path.display()
        )
    })?;
    let summary = report
        .split_once(SUMMARY_START)
        .and_then(|(_, rest)| rest.split_once(SUMMARY_END))
        .map(|(s, _)| s.trim())
        .ok_or("target/bench/report.md has no summary section")?;
    // The report's first paragraph names the command and the machine.
    let intro = report
        .lines()
        .find(|l| l.starts_with('`'))
        .unwrap_or_default();
    let contenders: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("Contenders:"))
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "))
        .collect();
    let section = format!(
        "{README_START}\n## Performance\n\n{intro}\n\nContenders:\n\n{}\n\n{}\n\nThe full report (per-workload tables, proto micro \
         benchmarks, where the time goes) and the chart are written to `target/bench/report.md` \
         and `target/bench/report.svg` by the same command; `cargo xtask bench --update-readme` \
         regenerates this section.\n{README_END}",
        contenders.join("\n"),
        summary
    );
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .map_err(|e| format!("{}: {e}", readme_path.display()))?;
    // The heading lives inside the markers; one left just above them is folded in.
    let updated = match (readme.find(README_START), readme.find(README_END)) {
        (Some(a), Some(b)) if a < b => {
            let before = readme[..a].trim_end();
            let before = before.strip_suffix("## Performance").unwrap_or(before);
            format!(
                "{}\n\n{section}{}",
                before.trim_end(),
                &readme[b + README_END.len()..]
            )
        }
        _ => format!("{}\n\n{section}\n", readme.trim_end()),
    };
    write(&readme_path, &updated)?;
    eprintln!("bench: README.md performance section updated");
    Ok(())
}
