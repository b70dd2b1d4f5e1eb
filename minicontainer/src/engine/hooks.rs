//! The spec's hooks (config.md, "POSIX-platform Hooks"): programs the runtime runs at points of
//! the lifecycle, each given the container's state as JSON on its standard input. Docker adds a
//! `prestart` hook to every container (its network set-up), so a runtime without hooks cannot
//! serve it.
//!
//! | hook | where it runs | when | if it fails |
//! | --- | --- | --- | --- |
//! | `prestart`, `createRuntime` | the runtime's namespaces | `create`, once the container's namespaces exist | `create` fails |
//! | `createContainer` | the container's mount namespace, before pivot_root | `create` | `create` fails |
//! | `startContainer` | the container, just before the process execs | `start` | `start` fails |
//! | `poststart` | the runtime's namespaces | after `start` | a warning |
//! | `poststop` | the runtime's namespaces | `delete` | a warning |

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{ContainerState, Hook, Spec, State};

/// The hooks of one kind, from the spec (none when it has none).
pub fn of(spec: &Spec, kind: Kind) -> Vec<Hook> {
    let Some(hooks) = spec.hooks() else {
        return Vec::new();
    };
    match kind {
        Kind::Prestart => hooks.prestart(),
        Kind::CreateRuntime => hooks.create_runtime(),
        Kind::CreateContainer => hooks.create_container(),
        Kind::StartContainer => hooks.start_container(),
        Kind::Poststart => hooks.poststart(),
        Kind::Poststop => hooks.poststop(),
    }
    .clone()
    .unwrap_or_default()
}

/// The six points of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

/// The state a hook reads on its standard input.
pub fn state(
    id: &str,
    status: ContainerState,
    pid: Option<i32>,
    bundle: &Path,
    spec: &Spec,
) -> Result<String> {
    let mut state = State::default();
    state
        .set_version(crate::spec::OCI_VERSION.to_string())
        .set_id(id.to_string())
        .set_status(status)
        .set_pid(pid)
        .set_bundle(bundle.to_path_buf())
        .set_annotations(spec.annotations().clone());
    Ok(serde_json::to_string(&state)?)
}

/// Run each hook in order, the state on its standard input; the first that fails (a non-zero
/// status, or its `timeout` passed: then it is killed) is the error, naming it.
pub fn run(kind: Kind, hooks: &[Hook], state: &str) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        let shown = || format!("{} hook {i} ({})", kind.name(), hook.path().display());
        let args = hook.args().clone().unwrap_or_default();
        let mut cmd = Command::new(hook.path());
        if let Some((first, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, first);
            cmd.args(rest);
        }
        cmd.env_clear()
            .envs(
                hook.env()
                    .iter()
                    .flatten()
                    .filter_map(|kv| kv.split_once('=')),
            )
            .stdin(Stdio::piped());
        let mut child = cmd.spawn().with_context(shown)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its state closes the pipe: that is its right.
            let _ = stdin.write_all(state.as_bytes());
        }
        let timeout = hook.timeout().filter(|t| *t > 0);
        let status = match timeout {
            None => child.wait().with_context(shown)?,
            Some(secs) => {
                let pidfd = labkit::signals::PidFd::open(child.id() as i32)?;
                let secs = secs.min(i64::from(u32::MAX)) as u64;
                let ended = pidfd.wait_exit(Duration::from_secs(secs))?;
                if !ended {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{}: still running after its timeout of {secs} s", shown());
                }
                child.wait().with_context(shown)?
            }
        };
        if !status.success() {
            bail!("{} failed: {status}", shown());
        }
    }
    Ok(())
}
