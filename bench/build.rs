//! Records how the bench binary was built, for the outputs (`summary.json` / `summary.md`):
//! cargo's PROFILE, opt-level and debug settings as cargo passes them to build scripts, and
//! the workspace manifest's `[profile.*]` lines that may apply. Every contender is in this one
//! binary, so they are all built alike, whatever the profile.
//!
//! Cargo does not tell a build script which named profile it builds (`--release` and
//! `--profile bench` both give PROFILE=release and share `target/release`), nor its `lto` or
//! `codegen-units`: for PROFILE=release the line names both candidates; `make bench` uses
//! `--profile bench` (LTO, one codegen unit).

use std::path::Path;

/// The non-comment lines of `[profile.<name>]` in `manifest`, with cargo's defaults for
/// `lto` and `codegen-units` when the section does not set them.
fn section(manifest: &str, name: &str) -> String {
    let header = format!("[profile.{name}]");
    let mut keys = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            keys.push(line.to_owned());
        }
    }
    let set = |k: &str| keys.iter().any(|l| l.starts_with(k));
    let mut defaults = Vec::new();
    if !set("lto") {
        defaults.push("lto = false");
    }
    if !set("codegen-units") {
        defaults.push("codegen-units = 16");
    }
    let mut s = format!(
        "{header} {}",
        if keys.is_empty() {
            "(nothing set)".to_owned()
        } else {
            keys.join(", ")
        }
    );
    if !defaults.is_empty() {
        s.push_str(&format!(" + cargo defaults {}", defaults.join(", ")));
    }
    s
}

fn main() {
    let manifest = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("..")
        .join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed=build.rs");
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "?".into());
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let profile = env("PROFILE");
    let candidates = if profile == "release" {
        format!(
            "`--release` → {}; `--profile bench` → {}; `make bench` uses `--profile bench`",
            section(&text, "release"),
            section(&text, "bench")
        )
    } else {
        format!("a debug build: {}", section(&text, "dev"))
    };
    println!(
        "cargo:rustc-env=AIOTHREADS_BENCH_PROFILE=cargo PROFILE={profile}, opt-level {}, \
         debug {} ({candidates}); every contender in the same binary",
        env("OPT_LEVEL"),
        env("DEBUG"),
    );
}
