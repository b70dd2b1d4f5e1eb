//! Builds `nslab-init` (the container's PID 1 with `--init`) statically linked, for
//! `minicontainer` to embed: it must run inside any root filesystem, where the host's C library
//! is not. A second cargo, with its own target directory beside this build's, so that it neither
//! waits on this build's lock nor rebuilds when nothing it is made of changed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = std::env::var("TARGET").expect("TARGET");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let workspace = manifest.parent().expect("the workspace").to_path_buf();
    // OUT_DIR is TARGET_DIR/[triple/]PROFILE/build/minicontainer-HASH/out: beside PROFILE.
    let target_dir = out
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| out.join("init"), |t| t.join("nslab-init"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "--offline",
            "-p",
            "nslab-init",
        ])
        .args(["--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        // Static: glibc's crt-static (the VM's tests are built the same way).
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        // Not clippy's driver (when this build is clippy's), nor this build's flags.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("run cargo to build nslab-init");
    assert!(status.success(), "building nslab-init (static) failed");
    let built = target_dir.join(&target).join("release").join("nslab-init");
    std::fs::copy(&built, out.join("nslab-init"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    for dir in ["nslab-init/src", "pid-demo/src/init.rs", "labkit/src"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
