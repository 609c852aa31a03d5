//! The one report of a `make bench` run: every measured series (case, contender, metric, unit,
//! median, min, max; curve points also carry their x), the goals as PASS/FAIL lines, one table
//! on stdout with the ratio ours/peer, and the same data as `target/bench/summary.json`,
//! `target/bench/summary.md` and an SVG chart.
//!
//! Conventions: a contender whose name starts with `aiothreads` is ours; one whose name ends
//! with `(reference)` is a floor or ceiling, neither ours nor a peer; every other one is a peer.
//! A unit ending in `/s` is a rate (higher is better); every other unit is a cost.

use std::fmt::Write as _;
use std::path::Path;

/// One measured series.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    /// For a point of a scaling curve: the name of the x axis and the value.
    pub x: Option<(String, f64)>,
    pub contender: String,
    pub metric: String,
    pub unit: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
}

/// Who a contender is (from its name, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Peer,
    Reference,
}

impl Row {
    pub fn kind(&self) -> Kind {
        if self.contender.ends_with("(reference)") {
            Kind::Reference
        } else if self.contender.starts_with("aiothreads") {
            Kind::Ours
        } else {
            Kind::Peer
        }
    }

    /// Rates (units ending in `/s`) are better high, costs better low.
    pub fn higher_is_better(&self) -> bool {
        self.unit.ends_with("/s")
    }

    fn group_key(&self) -> (&str, Option<u64>, &str) {
        (
            &self.case,
            self.x.as_ref().map(|x| x.1.to_bits()),
            &self.metric,
        )
    }
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

    fn verdict(&self) -> &'static str {
        if self.passed() {
            "PASS"
        } else {
            "FAIL"
        }
    }

    fn relation(&self) -> &'static str {
        if self.higher_is_better {
            "≥"
        } else {
            "≤"
        }
    }
}

/// The part of a contender's name after the first ", " (e.g. "1 KiB items"): a peer is
/// compared with the ours row of the same variant when there is one.
fn variant(name: &str) -> Option<&str> {
    name.split_once(", ").map(|(_, v)| v)
}

/// The median of the ours row a peer row is compared with: the first ours row of the group
/// with the same variant, else the group's first ours row.
fn ours_for(group: &[&Row], peer: &Row) -> Option<f64> {
    let ours = || group.iter().filter(|r| r.kind() == Kind::Ours);
    ours()
        .find(|r| {
            variant(&r.contender).is_some() && variant(&r.contender) == variant(&peer.contender)
        })
        .or_else(|| ours().next())
        .map(|r| r.median)
}

/// The CPU every figure of a run is tagged with: what `/proc/cpuinfo` says, how many CPUs
/// the process may use, and the two wake-up floors measured at the start of the run.
#[derive(Debug, Default, Clone)]
pub struct Machine {
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    /// Park/unpark round trip between two threads (median), ns.
    pub park_floor_ns: f64,
    /// Spin round trip between two threads (median), ns.
    pub spin_floor_ns: f64,
    /// How the bench binary was built (profile, opt-level, lto, codegen-units).
    pub profile: String,
}

impl Machine {
    /// "AMD EPYC 7B13 × 2, park 13911 ns, spin 132 ns": the tag PERFORMANCE.md keys its
    /// tables by.
    pub fn tag(&self) -> String {
        format!(
            "{} × {}, park floor {} ns, spin floor {} ns",
            self.cpu_model,
            self.cores,
            fmt_num(self.park_floor_ns),
            fmt_num(self.spin_floor_ns)
        )
    }
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    /// One line about the run (machine, load, full or quick), shown in the outputs.
    pub context: String,
    /// The CPU and build every figure of the run belongs to.
    pub machine: Machine,
}

/// The median of `xs` (mean of the middle two for an even count; NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() & 1 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

impl Report {
    /// Records a series, prints it at once (so a long run shows progress) and returns its
    /// median.
    pub fn add(
        &mut self,
        case: &str,
        contender: &str,
        metric: &str,
        unit: &str,
        xs: &[f64],
    ) -> f64 {
        self.push(case, None, contender, metric, unit, xs)
    }

    /// Records one point of a scaling curve: `x_name` = `x` (drawn on a log axis).
    #[allow(clippy::too_many_arguments)]
    pub fn add_point(
        &mut self,
        case: &str,
        x_name: &str,
        x: f64,
        contender: &str,
        metric: &str,
        unit: &str,
        xs: &[f64],
    ) -> f64 {
        self.push(case, Some((x_name.into(), x)), contender, metric, unit, xs)
    }

    fn push(
        &mut self,
        case: &str,
        x: Option<(String, f64)>,
        contender: &str,
        metric: &str,
        unit: &str,
        xs: &[f64],
    ) -> f64 {
        let row = Row {
            case: case.into(),
            x,
            contender: contender.into(),
            metric: metric.into(),
            unit: unit.into(),
            median: median(xs),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            samples: xs.len(),
        };
        println!(
            "  {:<58} {:>10} {:<12} ({} .. {}, n={})",
            truncate(&format!("{} [{}]", row.contender, label_of(&row)), 58),
            fmt_num(row.median),
            row.unit,
            fmt_num(row.min),
            fmt_num(row.max),
            row.samples
        );
        let m = row.median;
        self.rows.push(row);
        m
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
            goal.verdict(),
            fmt_num(value),
            goal.relation(),
            fmt_num(threshold)
        );
        self.goals.push(goal);
    }

    /// The groups of rows compared with each other: same case, same x, same metric; in the
    /// order of their first row.
    fn groups(&self) -> Vec<Vec<&Row>> {
        let mut groups: Vec<Vec<&Row>> = Vec::new();
        for r in &self.rows {
            match groups
                .iter_mut()
                .find(|g| g[0].group_key() == r.group_key())
            {
                Some(g) => g.push(r),
                None => groups.push(vec![r]),
            }
        }
        groups
    }

    /// Prints every result as one table (median, spread, ratio ours/peer) and the goals.
    pub fn print_summary(&self) {
        println!(
            "\n== results: medians over interleaved repetitions ({})",
            self.context
        );
        println!("   CPU: {}", self.machine.tag());
        println!("   build: {}", self.machine.profile);
        println!(
            "   ours/peer = the group's aiothreads median (same variant, else the first) ÷ the peer's median \
             (for ns-like units < 1 is better, for rates > 1 is better)"
        );
        for g in self.groups() {
            let head = g[0];
            println!("{} — {}", head.case, label_of(head));
            for r in &g {
                let ratio = match (r.kind(), ours_for(&g, r)) {
                    (Kind::Peer, Some(o)) => format!("ours/peer {}", fmt_ratio(o / r.median)),
                    _ => String::new(),
                };
                println!(
                    "    {:<52} {:>10} {:<12} {:>10} .. {:<10} {}",
                    truncate(&r.contender, 52),
                    fmt_num(r.median),
                    r.unit,
                    fmt_num(r.min),
                    fmt_num(r.max),
                    ratio
                );
            }
        }
        println!("\n== goals");
        for g in &self.goals {
            println!(
                "{} {:<72} measured {:>9} goal {} {}",
                g.verdict(),
                g.name,
                fmt_num(g.value),
                g.relation(),
                fmt_num(g.threshold)
            );
        }
    }

    /// Writes `summary.json` (hand-written JSON: no serde dependency for one file).
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let m = &self.machine;
        let mut s = format!(
            "{{\n  \"context\": {},\n  \"cpu\": {{\"model\": {}, \"cores\": {}, \
             \"park_floor_ns\": {}, \"spin_floor_ns\": {}, \"tag\": {}}},\n  \
             \"profile\": {},\n  \"results\": [\n",
            json_str(&self.context),
            json_str(&m.cpu_model),
            m.cores,
            json_num(m.park_floor_ns),
            json_num(m.spin_floor_ns),
            json_str(&m.tag()),
            json_str(&m.profile)
        );
        // Every figure carries its CPU ("model × cores"), so figures from runs on different
        // machines can be merged without losing where they come from.
        let cpu = json_str(&format!("{} × {}", m.cpu_model, m.cores));
        for (i, r) in self.rows.iter().enumerate() {
            let x = match &r.x {
                Some((name, x)) => {
                    format!(", \"x_name\": {}, \"x\": {}", json_str(name), json_num(*x))
                }
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "    {{\"case\": {}{x}, \"contender\": {}, \"metric\": {}, \"unit\": {}, \
                 \"median\": {}, \"min\": {}, \"max\": {}, \"samples\": {}, \"cpu\": {cpu}}}{}",
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
                 \"passed\": {}, \"cpu\": {cpu}}}{}",
                json_str(&g.name),
                json_num(g.value),
                json_num(g.threshold),
                g.higher_is_better,
                g.passed(),
                if i + 1 < self.goals.len() { "," } else { "" }
            );
        }
        s.push_str("  ]\n}\n");
        write(path, &s)
    }

    /// Writes the table and the goals as Markdown (what PERFORMANCE.md quotes).
    pub fn write_markdown(&self, path: &Path) -> std::io::Result<()> {
        let m = &self.machine;
        let mut s = format!(
            "CPU: **{}** — {} CPUs, park/unpark round trip {} ns, spin round trip {} ns \
             (measured at the start of the run)\n\nBuild: {}\n\nRun: {}\n\n",
            m.cpu_model,
            m.cores,
            fmt_num(m.park_floor_ns),
            fmt_num(m.spin_floor_ns),
            m.profile,
            self.context
        );
        let _ = writeln!(
            s,
            "## Goals on {} ({} of {} pass)\n",
            m.tag(),
            self.goals.iter().filter(|g| g.passed()).count(),
            self.goals.len()
        );
        s.push_str("| goal | measured | threshold | result |\n|---|---:|---|---|\n");
        for g in &self.goals {
            let _ = writeln!(
                s,
                "| {} | {} | {} {} | **{}** |",
                g.name,
                fmt_num(g.value),
                g.relation(),
                fmt_num(g.threshold),
                g.verdict()
            );
        }
        s.push_str("\n## Every series\n\n");
        s.push_str("| case | metric | contender | median | unit | min .. max | ours/peer |\n");
        s.push_str("|---|---|---|---:|---|---|---:|\n");
        for g in self.groups() {
            for r in &g {
                let ratio = match (r.kind(), ours_for(&g, r)) {
                    (Kind::Peer, Some(o)) => fmt_ratio(o / r.median),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} .. {} | {} |",
                    r.case,
                    label_of(r),
                    r.contender,
                    fmt_num(r.median),
                    r.unit,
                    fmt_num(r.min),
                    fmt_num(r.max),
                    ratio
                );
            }
        }
        write(path, &s)
    }

    /// Writes the SVG chart: a panel per (case, metric), packed in two columns. Plain cases
    /// are horizontal bars (linear, scaled per panel, whiskers from min to max); scaling
    /// curves are log-log line charts with one line per contender.
    pub fn write_svg(&self, path: &Path) -> std::io::Result<()> {
        // Panels: rows with the same case and metric (curve points of every x together).
        let mut panels: Vec<Vec<&Row>> = Vec::new();
        for r in &self.rows {
            match panels
                .iter_mut()
                .find(|p| p[0].case == r.case && p[0].metric == r.metric)
            {
                Some(p) => p.push(r),
                None => panels.push(vec![r]),
            }
        }
        let (top, gap) = (56.0, 18.0);
        let mut col_y = [top, top];
        let mut body = String::new();
        for p in &panels {
            let col = usize::from(col_y[1] < col_y[0]);
            let x0 = 10.0 + col as f64 * (PANEL_W + gap);
            let h = if p[0].x.is_some() {
                curve_panel(&mut body, p, x0, col_y[col])
            } else {
                bar_panel(&mut body, p, x0, col_y[col])
            };
            col_y[col] += h + gap;
        }
        let width = 20.0 + 2.0 * PANEL_W + gap;
        let height = col_y[0].max(col_y[1]);
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">aiothreads benchmarks \
             — medians of interleaved runs, whiskers min..max</text>\n\
             <text x=\"10\" y=\"40\" font-size=\"11\" fill=\"#444\"><tspan fill=\"{OURS}\">■ \
             aiothreads</tspan>  <tspan fill=\"{PEER}\">■ peers</tspan>  <tspan fill=\"{REF}\">■ \
             reference (floor/ceiling)</tspan>   {}</text>\n{body}</svg>\n",
            xml(&self.context)
        );
        write(path, &svg)
    }
}

const PANEL_W: f64 = 590.0;
const OURS: &str = "#d62728";
const PEER: &str = "#1f77b4";
const REF: &str = "#8c8c8c";
/// Line colours of curves: ours in warm colours, peers in cool ones.
const OURS_LINES: [&str; 4] = ["#d62728", "#ff7f0e", "#e377c2", "#8c564b"];
const PEER_LINES: [&str; 5] = ["#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#7f7f7f"];

fn panel_title(out: &mut String, r: &Row, x0: f64, y: f64) {
    let better = if r.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    };
    let _ = writeln!(
        out,
        r##"<text x="{x0}" y="{y}" font-size="12" font-weight="bold">{}</text><text x="{}" y="{}" fill="#555">{} [{}], {better}</text>"##,
        xml(&truncate(&r.case, 90)),
        x0,
        y + 14.0,
        xml(&r.metric),
        xml(&r.unit)
    );
}

/// Horizontal bars, one per contender; returns the panel's height.
fn bar_panel(out: &mut String, rows: &[&Row], x0: f64, y0: f64) -> f64 {
    let (label_w, bar_w, bar_h, pitch) = (236.0, 200.0, 12.0, 17.0);
    panel_title(out, rows[0], x0, y0);
    let scale = rows
        .iter()
        .map(|r| r.max.max(r.median))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let mut y = y0 + 22.0;
    let bx = x0 + label_w;
    for r in rows {
        let w = |v: f64| {
            if scale > 0.0 && v.is_finite() {
                (v / scale * bar_w).max(0.5)
            } else {
                0.0
            }
        };
        let fill = match r.kind() {
            Kind::Ours => OURS,
            Kind::Peer => PEER,
            Kind::Reference => REF,
        };
        let ratio = match (r.kind(), ours_for(rows, r)) {
            (Kind::Peer, Some(o)) => format!("  ours/peer {}", fmt_ratio(o / r.median)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            r##"<text x="{x0}" y="{ty}">{}</text><rect x="{bx}" y="{y}" width="{:.1}" height="{bar_h}" fill="{fill}"/><line x1="{:.1}" x2="{:.1}" y1="{wy}" y2="{wy}" stroke="#222"/><text x="{:.1}" y="{ty}">{}{}</text>"##,
            xml(&truncate(&r.contender, 40)),
            w(r.median),
            bx + w(r.min),
            bx + w(r.max),
            bx + w(r.max).max(w(r.median)) + 4.0,
            fmt_num(r.median),
            xml(&ratio),
            ty = y + bar_h - 2.0,
            wy = y + bar_h / 2.0,
        );
        y += pitch;
    }
    y - y0 + 4.0
}

/// A log-log chart with one line per contender; returns the panel's height.
fn curve_panel(out: &mut String, rows: &[&Row], x0: f64, y0: f64) -> f64 {
    panel_title(out, rows[0], x0, y0);
    let (left, plot_w, plot_h) = (x0 + 60.0, PANEL_W - 80.0, 200.0);
    let ptop = y0 + 28.0;
    let xs: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.x.as_ref().map(|x| x.1))
        .collect();
    let x_name = rows[0].x.as_ref().map(|x| x.0.clone()).unwrap_or_default();
    let finite_pos = |v: f64| v.is_finite() && v > 0.0;
    let ys: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.min, r.max, r.median])
        .filter(|v| finite_pos(*v))
        .collect();
    let (xlo, xhi) = log_range(&xs);
    let pad = (xhi - xlo) * 0.04;
    let (xlo, xhi) = (xlo - pad, xhi + pad);
    let (ylo, yhi) = log_range(&ys);
    let px = |x: f64| left + (x.log10() - xlo) / (xhi - xlo).max(1e-9) * plot_w;
    let py = |y: f64| ptop + plot_h - (y.log10() - ylo) / (yhi - ylo).max(1e-9) * plot_h;
    // Axes, grid and tick labels.
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{ptop}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
    );
    // x ticks at the measured x values.
    let mut xticks = xs.clone();
    xticks.sort_by(f64::total_cmp);
    xticks.dedup();
    for v in xticks {
        let x = px(v);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{ptop}" y2="{}" stroke="#e4e4e4"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            ptop + plot_h,
            ptop + plot_h + 13.0,
            if v.fract() == 0.0 && v < 1e6 && v % 1000.0 != 0.0 {
                format!("{v}")
            } else {
                fmt_tick(v)
            }
        );
    }
    for (v, major) in ticks(ylo, yhi) {
        let y = py(v);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{}"/>"##,
            left + plot_w,
            if major { "#ddd" } else { "#f0f0f0" }
        );
        if major || yhi - ylo <= 2.01 {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 4.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{} (log)</text><text x="{}" y="{:.1}" text-anchor="middle" fill="#555" transform="rotate(-90 {} {:.1})">{} (log)</text>"##,
        left + plot_w / 2.0,
        ptop + plot_h + 27.0,
        xml(&x_name),
        x0 + 12.0,
        ptop + plot_h / 2.0,
        x0 + 12.0,
        ptop + plot_h / 2.0,
        xml(&rows[0].unit)
    );
    // One line per contender, in order of appearance.
    let mut names: Vec<(&str, Kind)> = Vec::new();
    for r in rows {
        if !names.iter().any(|n| n.0 == r.contender) {
            names.push((&r.contender, r.kind()));
        }
    }
    let (mut n_ours, mut n_peer) = (0, 0);
    let mut legend_y = ptop + plot_h + 44.0;
    for (name, kind) in &names {
        let colour = match kind {
            Kind::Ours => {
                n_ours += 1;
                OURS_LINES[(n_ours - 1) % OURS_LINES.len()]
            }
            Kind::Peer => {
                n_peer += 1;
                PEER_LINES[(n_peer - 1) % PEER_LINES.len()]
            }
            Kind::Reference => REF,
        };
        let mut pts: Vec<&Row> = rows
            .iter()
            .copied()
            .filter(|r| r.contender == *name && finite_pos(r.median))
            .collect();
        pts.sort_by(|a, b| x_of(a).total_cmp(&x_of(b)));
        let path: Vec<String> = pts
            .iter()
            .map(|r| format!("{:.1},{:.1}", px(x_of(r)), py(r.median)))
            .collect();
        let dash = if *kind == Kind::Ours {
            ""
        } else {
            r#" stroke-dasharray="5,3""#
        };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for r in &pts {
            let (x, lo, hi) = (px(x_of(r)), r.min, r.max);
            if finite_pos(lo) && finite_pos(hi) {
                let _ = writeln!(
                    out,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                    py(lo),
                    py(hi)
                );
            }
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: {} {} at {} = {}</title></circle>"#,
                py(r.median),
                xml(name),
                fmt_num(r.median),
                xml(&r.unit),
                xml(&x_name),
                fmt_num(x_of(r))
            );
        }
        let _ = writeln!(
            out,
            r#"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{:.1}">{}</text>"#,
            left + 22.0,
            legend_y - 4.0,
            legend_y - 4.0,
            left + 28.0,
            legend_y,
            xml(name)
        );
        legend_y += 14.0;
    }
    legend_y - y0
}

fn x_of(r: &Row) -> f64 {
    r.x.as_ref().map_or(f64::NAN, |x| x.1)
}

/// The log10 range that covers the positive finite values of `vs`, with ends on a 1-2-5 grid.
fn log_range(vs: &[f64]) -> (f64, f64) {
    let pos = vs.iter().copied().filter(|v| v.is_finite() && *v > 0.0);
    let lo = pos.clone().fold(f64::INFINITY, f64::min);
    let hi = pos.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let da = lo.log10().floor();
    let a = if lo >= 5.0 * 10f64.powf(da) {
        da + 5f64.log10()
    } else if lo >= 2.0 * 10f64.powf(da) {
        da + 2f64.log10()
    } else {
        da
    };
    let db = hi.log10().ceil() - 1.0;
    let b = if hi <= 2.0 * 10f64.powf(db) {
        db + 2f64.log10()
    } else if hi <= 5.0 * 10f64.powf(db) {
        db + 5f64.log10()
    } else {
        db + 1.0
    };
    if b - a < 0.3 {
        (a - 0.15, b + 0.15)
    } else {
        (a, b)
    }
}

/// Tick values between 10^lo and 10^hi: (value, is a power of ten).
fn ticks(lo: f64, hi: f64) -> Vec<(f64, bool)> {
    let mut out = Vec::new();
    let mut d = lo.floor();
    while d <= hi.ceil() {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(d) * m;
            let l = v.log10();
            if l >= lo - 1e-9 && l <= hi + 1e-9 {
                out.push((v, m == 1.0));
            }
        }
        d += 1.0;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", fmt_tick(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", fmt_tick(v / 1e3))
    } else if a >= 1.0 {
        format!("{}", v.round())
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').to_owned()
    }
}

/// "metric" or "metric @ x_name = x" for a curve point.
fn label_of(r: &Row) -> String {
    match &r.x {
        Some((name, x)) => format!("{} @ {name} = {}", r.metric, fmt_num(*x)),
        None => r.metric.clone(),
    }
}

fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// A ratio: two or three significant digits, never in e-notation.
pub fn fmt_ratio(x: f64) -> String {
    if !x.is_finite() {
        format!("{x}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else if x >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
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
