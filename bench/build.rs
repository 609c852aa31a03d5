//! Records how the bench binary was built, for the outputs (`summary.json` / `summary.md`):
//! the profile's directory, its opt-level and debug settings as cargo passes them, and the
//! workspace manifest's `[profile.*]` lines that apply (every contender is in this one binary,
//! so they are all built alike).

use std::path::Path;

fn main() {
    let manifest = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("..")
        .join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    println!("cargo:rerun-if-changed=build.rs");
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "?".into());
    // OUT_DIR is <target>/<profile dir>/build/<pkg>-<hash>/out.
    let out_dir = env("OUT_DIR");
    let profile_dir = Path::new(&out_dir)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .map_or_else(|| "?".into(), |s| s.to_string_lossy().into_owned());
    // The manifest's section for that profile (`release` for `--release`; `bench` for
    // `cargo bench`; cargo's defaults for what it does not set).
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let section = format!("[profile.{profile_dir}]");
    let mut keys = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == section;
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
    let profile = format!(
        "profile `{profile_dir}` (opt-level {}, debug {}; Cargo.toml {section}: {}{}), \
         every contender in the same binary",
        env("OPT_LEVEL"),
        env("DEBUG"),
        if keys.is_empty() {
            "nothing set".to_owned()
        } else {
            keys.join(", ")
        },
        if defaults.is_empty() {
            String::new()
        } else {
            format!("; cargo defaults: {}", defaults.join(", "))
        }
    );
    println!("cargo:rustc-env=AIOTHREADS_BENCH_PROFILE={profile}");
}
