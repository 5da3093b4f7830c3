//! A real command without a terminal, as the agent runs NonInteractiveCommands:
//! `sh -c <command>` with stdin closed, stdout and stderr on separate pipes,
//! and the real exit code.
//!
//! The child leads its own process group, so [`ProcessControl::signal`]
//! (SIGINT for a client's `0x03`, SIGQUIT for `0x1c`) and
//! [`ProcessControl::kill`] reach everything `sh -c` started.
//!
//! Signals the simulator itself ignores stay ignored in the child (POSIX
//! exec semantics): started in the background of a non-interactive shell,
//! SIGINT/SIGQUIT would be ignored and could not interrupt the command.
//! Installing a tokio handler for them (e.g. `tokio::signal::ctrl_c()`)
//! before spawning gives children the default action again.

use std::process::Stdio;

use tokio::process::{ChildStderr, ChildStdout};

use super::{ProcessControl, ProcessError, RunAsUser, require_runtime};

/// A running `sh -c <command>` with piped stdout and stderr.
#[derive(Debug)]
pub struct ExecProcess {
    /// The command's standard output.
    stdout: ChildStdout,
    /// The command's standard error.
    stderr: ChildStderr,
    /// Signal, kill, wait.
    control: ProcessControl,
}

impl ExecProcess {
    /// Starts `sh -c command` with the simulator's environment plus `env`,
    /// stdin from `/dev/null`, in a new process group. Must be called inside
    /// a tokio runtime.
    pub fn spawn(command: &str, env: &[(String, String)]) -> Result<ExecProcess, ProcessError> {
        Self::spawn_as(command, env, None)
    }

    /// Like [`spawn`](Self::spawn), as `user` (Run As) when given.
    pub fn spawn_as(
        command: &str,
        env: &[(String, String)],
        user: Option<&RunAsUser>,
    ) -> Result<ExecProcess, ProcessError> {
        require_runtime()?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Reached only if the reaper task is torn down with the runtime.
            .kill_on_drop(true);
        if let Some(user) = user {
            user.apply(&mut cmd);
        }
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: "sh".to_owned(),
            source,
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            // Cannot happen with piped stdio; do not leave the child behind.
            let _ = child.start_kill();
            return Err(ProcessError::Spawn {
                program: "sh".to_owned(),
                source: std::io::Error::other("stdout/stderr pipes missing"),
            });
        };
        let control = ProcessControl::adopt(child, "sh", None)?;
        Ok(ExecProcess {
            stdout,
            stderr,
            control,
        })
    }

    /// The control handle (clone it to keep one beyond [`split`](Self::split)).
    pub fn control(&self) -> &ProcessControl {
        &self.control
    }

    /// Splits into stdout, stderr and control, each usable from its own task.
    /// Both pipes reach EOF once every process holding them has exited.
    pub fn split(self) -> (ChildStdout, ChildStderr, ProcessControl) {
        (self.stdout, self.stderr, self.control)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Signal;
    use super::super::tests::default_signal_actions_for_children;
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncRead, AsyncReadExt};
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(5);

    async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).await.unwrap();
        buf
    }

    /// Runs `command` to completion: (stdout, stderr, exit code).
    async fn run(command: &str, env: &[(String, String)]) -> (Vec<u8>, Vec<u8>, i32) {
        let (out, err, ctl) = ExecProcess::spawn(command, env).unwrap().split();
        timeout(LIMIT, async {
            let (o, e) = tokio::join!(read_all(out), read_all(err));
            (o, e, ctl.wait().await.unwrap())
        })
        .await
        .expect("command did not finish in time")
    }

    #[tokio::test]
    async fn separate_streams_and_exit_code() {
        let (out, err, code) = run("echo out; echo err >&2; exit 42", &[]).await;
        assert_eq!(out, b"out\n");
        assert_eq!(err, b"err\n");
        assert_eq!(code, 42);
    }

    #[tokio::test]
    async fn success_and_failure_codes() {
        assert_eq!(run("true", &[]).await.2, 0);
        assert_eq!(run("false", &[]).await.2, 1);
        assert_eq!(run("exit 255", &[]).await.2, 255);
    }

    #[tokio::test]
    async fn environment_is_passed_and_stdin_is_empty() {
        let env = [("SIM_VAR".to_owned(), "a b".to_owned())];
        let (out, _, code) = run("printf '%s|' \"$SIM_VAR\"; wc -c", &env).await;
        assert_eq!(String::from_utf8(out).unwrap().trim(), "a b|0");
        assert_eq!(code, 0);
    }

    #[tokio::test]
    async fn large_output_is_read_fully() {
        let (out, err, code) = run(
            "head -c 5000000 /dev/zero; head -c 70000 /dev/zero >&2",
            &[],
        )
        .await;
        assert_eq!(out.len(), 5_000_000);
        assert!(out.iter().all(|&b| b == 0));
        assert_eq!(err.len(), 70_000);
        assert_eq!(code, 0);
    }

    #[tokio::test]
    async fn interrupt_ends_sleep_promptly() {
        default_signal_actions_for_children();
        let (out, err, ctl) = ExecProcess::spawn("sleep 100", &[]).unwrap().split();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ctl.try_exit_code(), None);
        let started = Instant::now();
        ctl.signal(Signal::Interrupt).unwrap();
        let code = timeout(LIMIT, ctl.wait()).await.unwrap().unwrap();
        assert_eq!(code, 128 + 2);
        assert!(started.elapsed() < Duration::from_secs(2));
        timeout(LIMIT, async { tokio::join!(read_all(out), read_all(err)) })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn interrupt_reaches_children_of_the_shell() {
        default_signal_actions_for_children();
        // A second command keeps `sh` from exec'ing `sleep` in its place, so
        // the signal must reach the shell's child through the group.
        let (out, _err, ctl) = ExecProcess::spawn("sleep 100; echo after", &[])
            .unwrap()
            .split();
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.signal(Signal::Interrupt).unwrap();
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 128 + 2);
        let out = timeout(LIMIT, read_all(out)).await.unwrap();
        assert_eq!(out, b"");
    }

    #[tokio::test]
    async fn kill_ends_the_whole_group() {
        let (out, _err, ctl) = ExecProcess::spawn("sleep 100 & sleep 100", &[])
            .unwrap()
            .split();
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.kill().unwrap();
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 128 + 9);
        // The background sleep held stdout; EOF shows it was killed as well.
        timeout(LIMIT, read_all(out)).await.unwrap();
        // Killing again after exit is harmless.
        ctl.kill().unwrap();
    }
}
