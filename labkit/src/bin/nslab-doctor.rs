//! `nslab-doctor`: run this first. It tells what this machine can show, chapter by chapter.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--help" || a == "-h")
    {
        println!(
            "nslab-doctor: what this machine can show (kernel, namespaces, user namespaces, cgroups, overlayfs)\n\nUsage: nslab-doctor"
        );
        return ExitCode::SUCCESS;
    }
    labkit::errors::run_main("nslab-doctor", || {
        let findings = labkit::doctor::examine()?;
        print!("{}", labkit::doctor::render(&findings));
        Ok(ExitCode::SUCCESS)
    })
}
