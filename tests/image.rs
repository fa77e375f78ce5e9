//! The image's build context, checked without a container runtime: deploy/image/check-context
//! reads the Dockerfile, .dockerignore and every Cargo.toml and fails when a cargo step of the
//! Dockerfile would miss a file it needs (a path dependency or [patch] outside the workspace's
//! members before `cargo chef cook`; any manifest, source, build script or included file before
//! `cargo build`). The repo's own Dockerfile passes; broken copies show that each rule can fail.
//! The full image build and run is `make image-check` (docs/deploy.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the guard on a context folder and a Dockerfile; returns (passed, stdout + stderr).
fn guard(context: &Path, dockerfile: &Path) -> (bool, String) {
    let output: Output = Command::new("python3")
        .arg(root().join("deploy/image/check-context"))
        .arg("--context")
        .arg(context)
        .arg("--dockerfile")
        .arg(dockerfile)
        .output()
        .expect("running deploy/image/check-context with python3 (Python 3.11+)");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{text}");
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "the guard itself failed (exit {:?}):\n{text}",
        output.status.code()
    );
    (output.status.success(), text)
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A library crate in folder `dir` (named after its last part) whose lib.rs is `source`.
fn library(root: &Path, dir: &str, source: &str) {
    let name = dir.rsplit('/').next().unwrap();
    write(
        root,
        &format!("{dir}/Cargo.toml"),
        &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n"),
    );
    write(root, &format!("{dir}/src/lib.rs"), source);
}

/// A small workspace with every kind of file a Docker build can miss: a member, a path
/// dependency outside the members, a [patch] into vendor/, a build script that reads a file, and
/// an include_str!.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "Cargo.toml",
        r#"[workspace]
members = [".", "lib"]

[package]
name = "app"
version = "0.1.0"
edition = "2024"

[dependencies]
lib = { path = "lib" }
shared = { path = "shared" }

[patch.crates-io]
foo = { path = "vendor/foo" }
"#,
    );
    write(d, "Cargo.lock", "# lock\n");
    write(d, "src/main.rs", "fn main() { print!(\"{}\", include_str!(\"../assets/banner.txt\")); }\n");
    write(d, "assets/banner.txt", "txp\n");
    library(d, "lib", "pub fn f() {}\n");
    write(d, "lib/build.rs", "fn main() { println!(\"cargo:rerun-if-changed=proto/x.proto\"); }\n");
    write(d, "lib/proto/x.proto", "syntax = \"proto3\";\n");
    library(d, "shared", "pub fn g() {}\n");
    library(d, "vendor/foo", "pub fn h() {}\n");
    write(d, ".dockerignore", "target/\n.git/\n");
    dir
}

/// The fixture's Dockerfile done right: the cargo-chef shape of the repo's own, with the crates
/// that are not members copied before the cook.
const GOOD: &str = r#"# syntax=docker/dockerfile:1
FROM rust:1-slim-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
COPY vendor vendor
COPY shared/ ./shared/
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/app /usr/local/bin/app

FROM debian:bookworm-slim
COPY --from=builder /usr/local/bin/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
"#;

fn dockerfile(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn assert_fails_with(context: &Path, file: &Path, needles: &[&str]) {
    let (passed, text) = guard(context, file);
    assert!(!passed, "the guard passed a Dockerfile that misses files:\n{text}");
    for needle in needles {
        assert!(text.contains(needle), "the guard's report does not name {needle:?}:\n{text}");
    }
}

#[test]
fn the_repos_dockerfile_has_what_its_build_needs() {
    let (passed, text) = guard(&root(), &root().join("Dockerfile"));
    assert!(passed, "deploy/image/check-context fails on the repo's Dockerfile:\n{text}");
    assert!(text.contains("2 cargo step(s)"), "{text}");
}

#[test]
fn a_dockerfile_copying_every_needed_file_passes() {
    let dir = fixture();
    let file = dockerfile(dir.path(), "Dockerfile", GOOD);
    let (passed, text) = guard(dir.path(), &file);
    assert!(passed, "{text}");
}

#[test]
fn leaving_out_vendor_before_the_cook_fails() {
    let dir = fixture();
    let file = dockerfile(dir.path(), "Dockerfile", &GOOD.replace("COPY vendor vendor\n", ""));
    assert_fails_with(
        dir.path(),
        &file,
        &["cargo chef cook", "vendor/foo/", "[patch.crates-io] 'vendor/foo'", "not copied before this step"],
    );
}

#[test]
fn copying_vendor_only_after_the_cook_fails() {
    let dir = fixture();
    let text = GOOD
        .replace("COPY vendor vendor\n", "")
        .replace("COPY . .\nRUN cargo build", "COPY vendor vendor\nCOPY . .\nRUN cargo build");
    let file = dockerfile(dir.path(), "Dockerfile", &text);
    assert_fails_with(dir.path(), &file, &["cargo chef cook", "vendor/foo/"]);
    let (_, report) = guard(dir.path(), &file);
    assert!(!report.contains("cargo build, stage builder] vendor"), "the build step has vendor/:\n{report}");
}

#[test]
fn a_path_dependency_outside_the_members_is_needed_by_the_cook() {
    let dir = fixture();
    let file = dockerfile(dir.path(), "Dockerfile", &GOOD.replace("COPY shared/ ./shared/\n", ""));
    assert_fails_with(dir.path(), &file, &["cargo chef cook", "shared/", "path dependency 'shared'"]);
}

#[test]
fn a_dockerignore_that_drops_vendor_fails_and_an_exception_mends_it() {
    let dir = fixture();
    let file = dockerfile(dir.path(), "Dockerfile", GOOD);
    write(dir.path(), ".dockerignore", "target/\nvendor/\n");
    assert_fails_with(
        dir.path(),
        &file,
        &["excluded by .dockerignore", "vendor/foo/", "cargo chef cook", "cargo build"],
    );
    write(dir.path(), ".dockerignore", "target/\nvendor/\n!vendor/foo\n");
    let (passed, text) = guard(dir.path(), &file);
    assert!(passed, "a `!` exception in .dockerignore should bring vendor/foo back:\n{text}");
    write(dir.path(), ".dockerignore", "**/*.txt\n");
    assert_fails_with(
        dir.path(),
        &file,
        &["assets/banner.txt", "excluded by .dockerignore", "included by src/main.rs"],
    );
}

#[test]
fn files_read_by_include_str_and_a_build_script_are_needed_by_the_build() {
    let dir = fixture();
    // Copies manifests and sources one by one, as hand-written Dockerfiles often do.
    let text = GOOD.replace(
        "COPY . .\nRUN cargo build",
        "COPY Cargo.toml Cargo.lock ./\nCOPY src src\nCOPY lib/Cargo.toml lib/build.rs lib/\nCOPY lib/src lib/src\nRUN cargo build",
    );
    let file = dockerfile(dir.path(), "Dockerfile", &text);
    assert_fails_with(
        dir.path(),
        &file,
        &[
            "cargo build",
            "assets/banner.txt",
            "included by src/main.rs",
            "lib/proto/x.proto",
            "read by lib/build.rs",
        ],
    );
    // The same with both files copied passes: the report above was about them alone.
    let mended =
        text.replace("COPY src src\n", "COPY src src\nCOPY assets assets\nCOPY lib/proto lib/proto\n");
    let file = dockerfile(dir.path(), "Dockerfile.mended", &mended);
    let (passed, report) = guard(dir.path(), &file);
    assert!(passed, "{report}");
}

#[test]
fn a_dockerfile_without_a_cargo_step_fails() {
    let dir = fixture();
    let file = dockerfile(dir.path(), "Dockerfile", "FROM debian:bookworm-slim\nCOPY . .\n");
    assert_fails_with(dir.path(), &file, &["no RUN step runs cargo"]);
}

/// Copies the repo's sources (no build outputs, no git) into a temporary folder.
fn copy_of_the_repo() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if [".git", "target", ".tools", "txp-data"].iter().any(|skip| name == *skip) {
                continue;
            }
            let (src, dst) = (entry.path(), to.join(&name));
            if entry.file_type().unwrap().is_dir() {
                fs::create_dir_all(&dst).unwrap();
                copy(&src, &dst);
            } else if entry.file_type().unwrap().is_file() {
                fs::copy(&src, &dst).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&root(), dir.path());
    dir
}

/// The failure the image had before this guard: the workspace patched sqlx-core from vendor/,
/// and the Dockerfile did not copy vendor/ before `cargo chef cook`.
#[test]
fn the_repos_dockerfile_fails_once_the_workspace_patches_a_crate_from_vendor() {
    let repo = copy_of_the_repo();
    let d = repo.path();
    let mut manifest = fs::read_to_string(d.join("Cargo.toml")).unwrap();
    manifest.push_str("\n[patch.crates-io]\nsqlx-core = { path = \"vendor/sqlx-core\" }\n");
    fs::write(d.join("Cargo.toml"), manifest).unwrap();
    library(d, "vendor/sqlx-core", "\n");
    let dockerfile = d.join("Dockerfile");
    assert_fails_with(d, &dockerfile, &["cargo chef cook", "vendor/sqlx-core/", "[patch.crates-io]"]);

    // Copying vendor/ before the cook is what mends it.
    let text = fs::read_to_string(&dockerfile).unwrap();
    let cook = text.find("RUN cargo chef cook").expect("the Dockerfile cooks with cargo-chef");
    let mended = format!("{}COPY vendor vendor\n{}", &text[..cook], &text[cook..]);
    fs::write(&dockerfile, mended).unwrap();
    let (passed, report) = guard(d, &dockerfile);
    assert!(passed, "{report}");
}
