//! The one report of a `make bench` run: every measurement (case, contender, metric, unit,
//! median, min, max), the goals as PASS/FAIL lines, a table on stdout, and the same data as
//! `target/bench/summary.json` and `docs/bench.svg`.

use std::fmt::Write as _;
use std::path::Path;

/// One measured series.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub contender: String,
    pub metric: String,
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
}

/// A goal checked against a measured value.
#[derive(Debug, Clone)]
pub struct Goal {
    pub name: String,
    pub value: f64,
    pub threshold: f64,
    /// `true`: pass when `value >= threshold`; `false`: pass when `value <= threshold`.
    pub higher_is_better: bool,
}

impl Goal {
    pub fn passed(&self) -> bool {
        if self.higher_is_better {
            self.value >= self.threshold
        } else {
            self.value <= self.threshold
        }
    }
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
}

/// The median of `xs` (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() & 1 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

impl Report {
    /// Records a series and prints it at once (so a long run shows progress).
    pub fn add(&mut self, case: &str, contender: &str, metric: &str, unit: &str, xs: &[f64]) {
        let row = Row {
            case: case.into(),
            contender: contender.into(),
            metric: metric.into(),
            unit: unit.into(),
            median: median(xs),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            samples: xs.len(),
        };
        println!(
            "  {:<44} {:<34} {:>12} {:<12} (min {}, max {}, n={})",
            truncate(&row.case, 44),
            truncate(&format!("{} [{}]", row.contender, row.metric), 34),
            fmt_num(row.median),
            row.unit,
            fmt_num(row.min),
            fmt_num(row.max),
            row.samples
        );
        self.rows.push(row);
    }

    /// Records a goal and prints its PASS/FAIL line.
    pub fn goal(&mut self, name: &str, value: f64, threshold: f64, higher_is_better: bool) {
        let goal = Goal {
            name: name.into(),
            value,
            threshold,
            higher_is_better,
        };
        println!(
            "{} {name}: measured {} (goal {} {})",
            if goal.passed() { "PASS" } else { "FAIL" },
            fmt_num(value),
            if higher_is_better { "≥" } else { "≤" },
            fmt_num(threshold)
        );
        self.goals.push(goal);
    }

    /// Prints the goals again as a closing summary.
    pub fn print_summary(&self) {
        println!("\n== goals");
        for g in &self.goals {
            println!(
                "{} {:<60} measured {:>10} goal {} {}",
                if g.passed() { "PASS" } else { "FAIL" },
                g.name,
                fmt_num(g.value),
                if g.higher_is_better { "≥" } else { "≤" },
                fmt_num(g.threshold)
            );
        }
    }

    /// Writes `summary.json` (hand-written JSON: no serde dependency for one file).
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut s = String::from("{\n  \"results\": [\n");
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                s,
                "    {{\"case\": {}, \"contender\": {}, \"metric\": {}, \"unit\": {}, \
                 \"median\": {}, \"min\": {}, \"max\": {}, \"samples\": {}}}{}",
                json_str(&r.case),
                json_str(&r.contender),
                json_str(&r.metric),
                json_str(&r.unit),
                json_num(r.median),
                json_num(r.min),
                json_num(r.max),
                r.samples,
                if i + 1 < self.rows.len() { "," } else { "" }
            );
        }
        s.push_str("  ],\n  \"goals\": [\n");
        for (i, g) in self.goals.iter().enumerate() {
            let _ = writeln!(
                s,
                "    {{\"goal\": {}, \"measured\": {}, \"threshold\": {}, \"higher_is_better\": {}, \
                 \"passed\": {}}}{}",
                json_str(&g.name),
                json_num(g.value),
                json_num(g.threshold),
                g.higher_is_better,
                g.passed(),
                if i + 1 < self.goals.len() { "," } else { "" }
            );
        }
        s.push_str("  ]\n}\n");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, s)
    }

    /// Writes an SVG chart: one panel per (case, metric), a bar per contender, bars scaled to
    /// the panel's largest median, ours highlighted.
    pub fn write_svg(&self, path: &Path) -> std::io::Result<()> {
        let mut panels: Vec<(String, String, String, Vec<&Row>)> = Vec::new();
        for r in &self.rows {
            match panels.iter_mut().find(|p| p.0 == r.case && p.1 == r.metric) {
                Some(p) => p.3.push(r),
                None => panels.push((r.case.clone(), r.metric.clone(), r.unit.clone(), vec![r])),
            }
        }
        let (width, bar_h, label_w) = (900.0, 16.0, 300.0);
        let mut y = 40.0;
        let mut body = String::new();
        for (case, metric, unit, rows) in &panels {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{y}" font-weight="bold">{} — {} ({})</text>"#,
                xml(case),
                xml(metric),
                xml(unit)
            );
            y += 8.0;
            let top = rows
                .iter()
                .map(|r| r.median)
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            for r in rows {
                y += bar_h + 4.0;
                let frac = if top > 0.0 && r.median.is_finite() {
                    r.median / top
                } else {
                    0.0
                };
                let w = (width - label_w - 120.0) * frac;
                let ours = r.contender.starts_with("aiothreads");
                let _ = writeln!(
                    body,
                    r#"<text x="10" y="{}" font-size="12">{}</text><rect x="{label_w}" y="{}" width="{w:.1}" height="{bar_h}" fill="{}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
                    y - 4.0,
                    xml(&r.contender),
                    y - bar_h,
                    if ours { "#d9534f" } else { "#5b8db8" },
                    label_w + w + 6.0,
                    y - 4.0,
                    fmt_num(r.median)
                );
            }
            y += 30.0;
        }
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{y}\" \
             font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" \
             fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">\
             aiothreads benchmarks (medians; red = aiothreads, blue = peers)</text>\n{body}</svg>\n"
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, svg)
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// A number with about four significant digits.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
