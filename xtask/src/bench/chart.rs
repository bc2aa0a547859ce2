//! The chart (`target/bench/report.svg`): speed relative to the floor, per case and
//! contender, as a hand-written SVG.

use std::fmt::Write as _;

use super::cases::Metric;
use super::report::{xml, Report};
use super::run::Status;

impl Report {
    /// A horizontal grouped bar chart: speed relative to the floor, per case and contender.
    pub(super) fn svg(&self) -> String {
        let bar_h = 14.0;
        let gap = 16.0;
        let left = 340.0;
        let width = 1040.0;
        let plot_w = width - left - 90.0;
        let top = 96.0;
        let n = self.contenders.len() as f64;
        let group_h = n * bar_h + gap;
        let height = top + group_h * self.cases.len() as f64 + 60.0;
        let mut max: f64 = 1.2;
        for case in &self.cases {
            for c in &self.contenders {
                if let Some(s) = self.speed(c.name, "floor", case) {
                    max = max.max(s * 1.05);
                }
            }
        }
        let max = ((max.min(4.0) * 2.0).ceil() / 2.0).max(1.5);
        let x = |v: f64| left + plot_w * (v.min(max) / max);
        let palette = [
            "#555555", "#d62728", "#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#ff7f0e",
        ];
        let color = |i: usize| palette[i % palette.len()];
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" \
             font-size=\"12\">"
        );
        let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Speed relative to the floor (raw hyper + typed serde): higher is faster, 1.0 = floor</text>",
            10
        );
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"40\" fill=\"#555\">{} ({}) · throughput: ops/s ÷ floor's; latency: floor's p50 ÷ p50</text><text x=\"10\" y=\"56\" fill=\"#555\">{}</text>",
            xml(&self.command),
            xml(&self.machine.date),
            xml(&self.machine.line())
        );
        // Legend.
        let mut lx = 10.0;
        for (i, c) in self.contenders.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<rect x=\"{lx}\" y=\"68\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"78\">{}</text>",
                color(i),
                lx + 16.0,
                xml(c.name)
            );
            lx += 30.0 + 7.0 * c.name.len() as f64;
        }
        // Grid: 0, 0.5, 1 (the floor), ...
        let mut t = 0.0;
        while t <= max + 1e-9 {
            let gx = x(t);
            let (stroke, dash) = if (t - 1.0).abs() < 1e-9 {
                ("#000", "")
            } else {
                ("#ddd", " stroke-dasharray=\"3,3\"")
            };
            let _ = writeln!(
                svg,
                "<line x1=\"{gx:.1}\" y1=\"{top}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\"{dash}/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.1}</text>",
                height - 40.0,
                height - 26.0
            );
            t += 0.5;
        }
        for (gi, case) in self.cases.iter().enumerate() {
            let gy = top + gi as f64 * group_h;
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-weight=\"bold\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                left - 8.0,
                gy + n * bar_h / 2.0 - 2.0,
                xml(&case.title),
                left - 8.0,
                gy + n * bar_h / 2.0 + 12.0,
                xml(&format!(
                    "{}, {}",
                    case.server,
                    match case.metric {
                        Metric::Latency => "p50 latency",
                        Metric::Throughput => "throughput",
                    }
                ))
            );
            for (i, c) in self.contenders.iter().enumerate() {
                let y = gy + i as f64 * bar_h;
                match self.speed(c.name, "floor", case) {
                    Some(v) => {
                        let _ = writeln!(
                            svg,
                            "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.3}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{v:.2}{}</text>",
                            (x(v) - left).max(1.0),
                            bar_h - 2.0,
                            color(i),
                            xml(c.name),
                            x(v) + 4.0,
                            y + bar_h - 4.0,
                            if v > max { " ▸" } else { "" }
                        );
                    }
                    None => {
                        let why = match self.record(c.name, case.id).map(|r| &r.status) {
                            Some(Status::Unsupported(_)) => "unsupported",
                            Some(Status::Failed(_)) => "failed",
                            _ => "not run",
                        };
                        let _ = writeln!(
                            svg,
                            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#999\">{} {why}</text>",
                            left + 4.0,
                            y + bar_h - 4.0,
                            xml(c.name)
                        );
                    }
                }
            }
        }
        svg.push_str("</svg>\n");
        svg
    }
}
