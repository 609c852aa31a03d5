//! The README as a user pastes it. Its Rust blocks run as doctests of this crate
//! (`ReadmeDoctests` in `src/lib.rs`); these tests check the rest: every block is a whole
//! program with no hidden lines, the first one shows `.detach()`, and every install line names
//! crates, versions and features that exist — the workspace's own, or dependencies this crate
//! (where the doctests compile) declares with at least those features.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The README without the code blocks marked `<!-- not built ... -->` on the line above them
/// (a firmware target's install lines, which do not build for the host).
fn checked_readme() -> String {
    let text = read("README.md");
    let mut out = String::new();
    let mut skipping = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("<!-- not built") {
            assert!(
                lines.peek().is_some_and(|next| next.starts_with("```")),
                "a `not built` mark must sit right above a code block"
            );
            skipping = true;
            lines.next();
            continue;
        }
        if skipping {
            skipping = line != "```";
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn manifest(path: &str) -> Table {
    read(path).parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fenced code blocks of `text` whose info string starts with `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    if info.split(',').next() == Some(lang) {
                        current = Some(String::new());
                    }
                }
            }
            Some(block) => {
                if line == "```" {
                    out.push(current.take().expect("open block"));
                } else {
                    block.push_str(line);
                    block.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unclosed ```{lang} block");
    out
}

/// A dependency line: its version requirement, features and `default-features`.
#[derive(Debug)]
struct Dep {
    version: Option<String>,
    features: BTreeSet<String>,
    default_features: bool,
}

fn dep(name: &str, spec: &Value) -> Dep {
    match spec {
        Value::String(v) => Dep {
            version: Some(v.clone()),
            features: BTreeSet::new(),
            default_features: true,
        },
        Value::Table(t) => Dep {
            version: t.get("version").and_then(Value::as_str).map(str::to_owned),
            features: t
                .get("features")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|f| f.as_str().expect("feature name").to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            default_features: t
                .get("default-features")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        },
        other => panic!("dependency {name}: unexpected {other:?}"),
    }
}

/// Whether the requirement `req` (`"0.1"`, `"1"`, `"1.2.3"`) accepts `version` (caret rules,
/// which are what a bare requirement means).
fn accepts(req: &str, version: &str) -> bool {
    let req: Vec<u64> = req.split('.').map(|p| p.parse().expect("number")).collect();
    let ver: Vec<u64> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().expect("number"))
        .collect();
    // The leftmost non-zero part of the requirement must match; later parts are minimums.
    let significant = req.iter().position(|&p| p != 0).unwrap_or(req.len() - 1);
    req.iter().enumerate().all(|(i, &r)| {
        if i <= significant {
            ver[i] == r
        } else {
            ver[i] >= r
        }
    })
}

const OWN: [(&str, &str); 3] = [
    ("aiothreads", "std-backend/Cargo.toml"),
    ("aiothreads-core", "core/Cargo.toml"),
    ("aiothreads-macros", "macros/Cargo.toml"),
];

#[test]
fn install_lines_name_real_crates_versions_and_features() {
    let readme = checked_readme();
    let root = manifest("Cargo.toml");
    let version = root["workspace"]["package"]["version"]
        .as_str()
        .expect("workspace version")
        .to_owned();
    let tests_crate = manifest("tests/Cargo.toml");
    let ours = tests_crate["dependencies"]
        .as_table()
        .expect("dependencies");

    let install = blocks(&readme, "toml");
    assert!(
        install.len() >= 3,
        "the install section has a block per executor"
    );
    let mut seen = BTreeSet::new();
    for block in &install {
        let table: Table = block.parse().unwrap_or_else(|e| panic!("{e}\n{block}"));
        let deps = table["dependencies"].as_table().expect("[dependencies]");
        for (name, spec) in deps {
            let d = dep(name, spec);
            seen.insert(name.clone());
            let req = d.version.as_deref().expect("a version");
            if let Some((_, path)) = OWN.iter().find(|(n, _)| n == name) {
                assert!(
                    accepts(req, &version),
                    "{name} = {req:?} does not accept the workspace version {version}"
                );
                let krate = manifest(path);
                let features = krate.get("features").and_then(Value::as_table);
                for f in &d.features {
                    assert!(
                        features.is_some_and(|t| t.contains_key(f)),
                        "{name} has no feature {f:?} ({path})"
                    );
                }
            } else {
                let mine = dep(
                    name,
                    ours.get(name).unwrap_or_else(|| {
                        panic!("the README installs {name}, which the doctests' crate lacks")
                    }),
                );
                let my_req = mine.version.expect("a version");
                assert_eq!(
                    my_req.split('.').next(),
                    req.split('.').next(),
                    "{name}: the README says {req}, the doctests use {my_req}"
                );
                assert!(
                    d.features.is_subset(&mine.features),
                    "{name}: the README's features {:?} are not all enabled for the doctests",
                    d.features
                );
                assert!(d.default_features, "{name}: default features off");
            }
        }
    }
    // The doctests compile against the tokio install line's choices.
    let aiothreads = dep("aiothreads", &ours["aiothreads"]);
    assert!(aiothreads.features.contains("tokio"));
    for needed in ["aiothreads", "tokio", "futures", "smol"] {
        assert!(seen.contains(needed), "no install line for {needed}");
    }
}

#[test]
fn rust_blocks_are_whole_programs_without_hidden_lines() {
    let readme = checked_readme();
    let code = blocks(&readme, "rust");
    assert!(code.len() >= 4, "found {} Rust blocks", code.len());
    for block in &code {
        for line in block.lines() {
            let t = line.trim_start();
            assert!(
                !(t == "#" || t.starts_with("# ")),
                "a hidden doctest line fails when pasted: {line:?}\n{block}"
            );
        }
        assert!(block.contains("fn main()"), "not a whole program:\n{block}");
    }
    // The README's first example is "A first look", and it shows how to let a job run without
    // awaiting it (dropping the handle cancels).
    let first_look = readme.split("## A first look").nth(1).expect("the section");
    assert_eq!(code[0], blocks(first_look, "rust")[0]);
    assert!(code[0].contains(".call().detach()"), "{}", code[0]);
}

#[test]
fn requirement_matching() {
    assert!(accepts("0.1", "0.1.0"));
    assert!(accepts("0.1", "0.1.7"));
    assert!(!accepts("0.1", "0.2.0"));
    assert!(accepts("1", "1.40.0"));
    assert!(!accepts("2", "1.0.0"));
    assert!(!accepts("0.1.3", "0.1.2"));
}

/// Builds the README as a new user would: a fresh package per install block, with exactly that
/// block's `[dependencies]` (the workspace's crates patched in from their paths, as if
/// published), and every Rust block below it (up to the next install block) built and run as
/// an example of that package. Slow (it compiles the dependencies once more): `make readme`.
#[test]
#[ignore = "compiles fresh packages; run by `make readme`"]
fn install_blocks_build_the_readme_examples_as_shown() {
    let root = workspace();
    let readme = checked_readme();
    let scratch = root.join("target").join("readme-check");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let lock = read("Cargo.lock");
    // Each Rust block goes with the nearest install block above it.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut lang_block = String::new();
    let mut lang = None;
    for line in readme.lines() {
        match lang {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    lang = Some(info.split(',').next().unwrap_or("").to_owned());
                    lang_block.clear();
                }
            }
            Some(ref l) if line == "```" => {
                match l.as_str() {
                    "toml" => groups.push((lang_block.clone(), Vec::new())),
                    "rust" => groups
                        .last_mut()
                        .expect("an install block above every Rust block")
                        .1
                        .push(lang_block.clone()),
                    _ => {}
                }
                lang = None;
            }
            Some(_) => {
                lang_block.push_str(line);
                lang_block.push('\n');
            }
        }
    }
    assert_eq!(
        groups.iter().map(|g| g.1.len()).sum::<usize>(),
        blocks(&readme, "rust").len()
    );
    for (i, (block, examples)) in groups.iter().enumerate() {
        let dir = scratch.join(format!("install-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).expect("scratch dir");
        let mut manifest = format!(
            "[package]\nname = \"readme-install-{i}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[workspace]\n\n{block}\n[patch.crates-io]\n"
        );
        for (name, path) in OWN {
            let dir = root
                .join(path)
                .parent()
                .expect("crate dir")
                .display()
                .to_string();
            manifest.push_str(&format!("{name} = {{ path = {dir:?} }}\n"));
        }
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
        // The workspace's versions of the shared dependencies, not whatever is newest.
        std::fs::write(dir.join("Cargo.lock"), &lock).expect("lock file");
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").expect("main");
        std::fs::create_dir_all(dir.join("examples")).expect("examples dir");
        for (n, code) in examples.iter().enumerate() {
            std::fs::write(dir.join(format!("examples/readme_{i}_{n}.rs")), code).expect("example");
        }
        let mut cmd = std::process::Command::new(&cargo);
        cmd.arg("build")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(scratch.join("target"))
            .arg("--examples");
        let status = cmd.status().expect("run cargo");
        assert!(
            status.success(),
            "install block {i} or a Rust block below it does not build:\n{block}"
        );
        for (n, code) in examples.iter().enumerate() {
            let exe = scratch
                .join("target/debug/examples")
                .join(format!("readme_{i}_{n}"));
            let status = std::process::Command::new(&exe)
                .current_dir(&dir)
                .status()
                .expect("run example");
            assert!(status.success(), "README example failed:\n{code}");
        }
    }
}
