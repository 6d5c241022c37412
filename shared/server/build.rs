//! The commit a build is made from, for `--version` and
//! `wxpush_build_info`: `WXPUSH_GIT_COMMIT` when the build sets it (the
//! Dockerfile, the test command), else `unknown`. Read from the variable,
//! not from `.git`, so a local build is not redone for every commit.

fn main() {
    println!("cargo:rerun-if-env-changed=WXPUSH_GIT_COMMIT");
    let commit = std::env::var("WXPUSH_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WXPUSH_BUILD_COMMIT={commit}");
}
