//! Records the commit the binary is built from, for `selextract --version`:
//! `SELEXTRACT_COMMIT` when set (release builds from a tarball, container builds), else
//! `git rev-parse HEAD` in the source tree, else `unknown`. Cargo reruns this when that
//! variable or the checkout's HEAD moves.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Hex digits of the commit shown.
const SHORT: usize = 12;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SELEXTRACT_COMMIT");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match std::env::var("SELEXTRACT_COMMIT") {
        Ok(value) if !value.trim().is_empty() => shorten(value.trim()),
        _ => {
            watch_git_head(&manifest_dir);
            git(&manifest_dir, &["rev-parse", "HEAD"])
                .map(|hash| shorten(&hash))
                .unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=SELEXTRACT_BUILD_COMMIT={commit}");
}

/// A full hexadecimal hash is cut to [`SHORT`] digits; anything else is shown as given.
fn shorten(commit: &str) -> String {
    if commit.len() > SHORT && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        commit[..SHORT].to_owned()
    } else {
        commit.to_owned()
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout), the branch it points at (a
/// commit) and its directory, and `packed-refs` (where `git gc` moves that branch), each
/// when it exists.
fn watch_git_head(dir: &Path) {
    let Some(head) = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-path", "HEAD"],
    ) else {
        return;
    };
    let mut watched = vec![PathBuf::from(&head)];
    if let Ok(content) = std::fs::read_to_string(&head)
        && let Some(reference) = content.trim().strip_prefix("ref: ")
    {
        for path in [reference, "packed-refs"] {
            if let Some(file) = git(
                dir,
                &["rev-parse", "--path-format=absolute", "--git-path", path],
            ) {
                let file = PathBuf::from(file);
                // A branch that lives only in packed-refs gets a file of its own at the next
                // commit: watching its directory catches that too.
                if path == reference
                    && let Some(parent) = file.parent()
                {
                    watched.push(parent.to_path_buf());
                }
                watched.push(file);
            }
        }
    }
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
