//! `nslab-doctor`: run this first. It tells what this machine can show, chapter by chapter.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // Read as OS strings: an argument that is not UTF-8 is refused, not a panic.
    match std::env::args_os().nth(1) {
        None => {}
        Some(a) if a == "--help" || a == "-h" => {
            println!(
                "nslab-doctor: what this machine can show (kernel, namespaces, user namespaces, cgroups, overlayfs)\n\nUsage: nslab-doctor"
            );
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "nslab-doctor: unexpected argument {:?}: it takes none (see --help)",
                other
            );
            return ExitCode::from(labkit::errors::EXIT_BAD_INPUT);
        }
    }
    labkit::errors::run_main("nslab-doctor", || {
        let findings = labkit::doctor::examine()?;
        print!("{}", labkit::doctor::render(&findings));
        Ok(ExitCode::SUCCESS)
    })
}
