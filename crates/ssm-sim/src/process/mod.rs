//! Real processes for the simulated agent: a shell or command under a
//! pseudo-terminal ([`pty`], for Standard_Stream and InteractiveCommands) and
//! a plain command with separate stdout/stderr ([`exec`], for
//! NonInteractiveCommands).
//!
//! This module owns starting, signalling, killing and reaping those
//! processes. It knows nothing of the data channel: the agent logic pumps the
//! byte streams and turns exit codes into payloads.
//!
//! Every process is a group leader (the PTY child via `setsid`, the exec child
//! via `process_group(0)`), so signals reach the children of `sh -c` too. A
//! background task reaps the child as soon as it exits; the exit code is then
//! available to every clone of the [`ProcessControl`]. When the last control
//! handle is dropped while the process still runs, its group is killed.

pub mod exec;
pub mod pty;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

use rustix::process::{Pid, kill_process_group};
use tokio::sync::watch;

pub use exec::ExecProcess;
pub use pty::{PtyControl, PtyInput, PtyOutput, PtyProcess, PtySpawn, shell_command_argv};

/// Errors from starting or controlling a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Spawning needs the tokio runtime (the reaper and async I/O live there).
    #[error("processes can only be started inside a tokio runtime")]
    NoRuntime,
    /// The argument vector was empty.
    #[error("cannot start a process: the command line is empty")]
    EmptyCommand,
    /// The pseudo-terminal could not be allocated or configured.
    #[error("cannot set up a pseudo-terminal: {0}")]
    Pty(#[source] pty_process::Error),
    /// The program could not be started (not found, not executable, ...).
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Changing the terminal size failed.
    #[error("cannot resize the terminal: {0}")]
    Resize(#[source] io::Error),
    /// Sending a signal failed (other than "already gone", which is ignored).
    #[error("cannot send {signal:?} to process group {pgid}: {source}")]
    Signal {
        /// The signal that was being sent.
        signal: Signal,
        /// The target process group.
        pgid: i32,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Waiting for the process failed, or its reaper was torn down (runtime
    /// shutting down).
    #[error("waiting for process {pid} failed: {reason}")]
    Wait {
        /// The process waited for.
        pid: i32,
        /// Why waiting failed.
        reason: String,
    },
}

/// An OS user a session's process runs as (Run As): its uid and primary
/// gid. Supplementary groups are not set (see `agent::run_as`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAsUser {
    /// The user name (for `HOME=/home/<name>`, as the agent sets it).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

impl RunAsUser {
    /// Applies the user to `cmd`: switches uid and gid unless they are the
    /// simulator's own, and sets `HOME` as the agent does.
    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        let same = rustix::process::geteuid().as_raw() == self.uid
            && rustix::process::getegid().as_raw() == self.gid;
        if !same {
            cmd.uid(self.uid).gid(self.gid);
        }
        cmd.env("HOME", format!("/home/{}", self.name));
    }
}

/// The signals the agent sends to a session's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: a client's Ctrl-C (byte `0x03`).
    Interrupt,
    /// SIGQUIT: a client's Ctrl-\ (byte `0x1c`).
    Quit,
    /// SIGHUP: the terminal went away.
    Hangup,
    /// SIGTERM: polite termination.
    Terminate,
    /// SIGKILL: immediate termination.
    Kill,
}

impl Signal {
    /// The signal a byte of client input stands for in a
    /// NonInteractiveCommands session: `0x03` → SIGINT, `0x1c` → SIGQUIT
    /// (spec 7.3); every other byte is ignored.
    pub fn from_control_byte(byte: u8) -> Option<Signal> {
        match byte {
            0x03 => Some(Signal::Interrupt),
            0x1c => Some(Signal::Quit),
            _ => None,
        }
    }

    /// The signal number (as used in the `128 + n` exit-code convention).
    pub fn number(self) -> i32 {
        self.to_rustix().as_raw()
    }

    fn to_rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Interrupt => S::INT,
            Signal::Quit => S::QUIT,
            Signal::Hangup => S::HUP,
            Signal::Terminate => S::TERM,
            Signal::Kill => S::KILL,
        }
    }
}

/// How the reaper reports the end of the process: the exit code, or why
/// waiting failed.
type Exit = Result<i32, String>;

/// A cloneable handle to signal, kill and wait for a running process, usable
/// from any task. Dropping the last clone kills the process group if it is
/// still running.
#[derive(Debug, Clone)]
pub struct ProcessControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The child's pid, which is also its process group id.
    pid: Pid,
    /// The PTY master (a duplicate), used to find and signal the terminal's
    /// foreground process group, which job control may have moved out of
    /// the child's own group. `None` for exec processes.
    tty: Option<OwnedFd>,
    /// Set once by the reaper task when the child has been reaped.
    exit: watch::Receiver<Option<Exit>>,
}

impl ProcessControl {
    /// Takes ownership of a freshly spawned child: starts its reaper task and
    /// returns the control handle.
    fn adopt(
        mut child: tokio::process::Child,
        program: &str,
        tty: Option<OwnedFd>,
    ) -> Result<Self, ProcessError> {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| ProcessError::Spawn {
                program: program.to_owned(),
                source: io::Error::other("the new process has no pid"),
            })?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => Ok(exit_code(status)),
                Err(e) => Err(e.to_string()),
            };
            tx.send_replace(Some(exit));
        });
        Ok(Self {
            inner: Arc::new(Inner { pid, tty, exit: rx }),
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> i32 {
        self.inner.pid.as_raw_pid()
    }

    /// Waits for the process to exit and returns its exit code, or
    /// `128 + signal` if a signal ended it. Can be called any number of
    /// times, from any clone; cancel-safe.
    pub async fn wait(&self) -> Result<i32, ProcessError> {
        let mut rx = self.inner.exit.clone();
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map(|guard| guard.clone())
            .map_err(|_| self.wait_error("the reaper task ended (runtime shutting down?)"))?;
        match exit {
            Some(Ok(code)) => Ok(code),
            Some(Err(reason)) => Err(self.wait_error(&reason)),
            None => Err(self.wait_error("no exit status recorded")),
        }
    }

    /// The exit code if the process has already exited, without waiting.
    pub fn try_exit_code(&self) -> Option<i32> {
        match &*self.inner.exit.borrow() {
            Some(Ok(code)) => Some(*code),
            _ => None,
        }
    }

    /// Sends `signal` to the process group (and, for a PTY, to the
    /// terminal's foreground process group). A group that no longer exists is
    /// not an error.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        self.inner.signal(signal)
    }

    /// Kills the process group with SIGKILL; [`wait`](Self::wait) then
    /// returns 137.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.inner.signal(Signal::Kill)
    }

    fn wait_error(&self, reason: &str) -> ProcessError {
        ProcessError::Wait {
            pid: self.pid(),
            reason: reason.to_owned(),
        }
    }
}

impl Inner {
    fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        // Job control in an interactive shell puts each foreground job in its
        // own group; reach it through the terminal first.
        let foreground = match &self.tty {
            Some(tty) => match rustix::termios::tcgetpgrp(tty) {
                Ok(pgid) if pgid != self.pid => signal_group(pgid, signal),
                // No foreground group (the session is ending) or it is ours.
                _ => Ok(()),
            },
            None => Ok(()),
        };
        let own = signal_group(self.pid, signal);
        foreground.and(own)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.exit.borrow().is_none() {
            // Best effort: nothing useful can be done with a failure here.
            let _ = self.signal(Signal::Kill);
        }
    }
}

/// Sends `signal` to process group `pgid`, treating "no such process" as done.
///
/// The group id is the leader's pid. Once the leader is reaped the kernel can
/// reuse that number only after every member of the group is gone, so a late
/// signal either reaches leftover members or finds nothing.
fn signal_group(pgid: Pid, signal: Signal) -> Result<(), ProcessError> {
    match kill_process_group(pgid, signal.to_rustix()) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(errno) => Err(ProcessError::Signal {
            signal,
            pgid: pgid.as_raw_pid(),
            source: errno.into(),
        }),
    }
}

/// The agent's exit code: the process's own code, or `128 + signal` when a
/// signal ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 128,
    }
}

/// Fails early, with a clear error, outside a tokio runtime (tokio would
/// panic instead).
fn require_runtime() -> Result<(), ProcessError> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| ProcessError::NoRuntime)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SIGINT/SIGQUIT may be inherited as ignored (tests run in the
    /// background of a non-interactive shell), and exec keeps ignored signals
    /// ignored. A tokio handler replaces the disposition, and handled signals
    /// revert to the default action in exec'd children.
    pub(crate) fn default_signal_actions_for_children() {
        use tokio::signal::unix::{SignalKind, signal};
        let _ = signal(SignalKind::interrupt());
        let _ = signal(SignalKind::quit());
    }

    #[test]
    fn control_bytes_map_to_signals() {
        assert_eq!(Signal::from_control_byte(0x03), Some(Signal::Interrupt));
        assert_eq!(Signal::from_control_byte(0x1c), Some(Signal::Quit));
        assert_eq!(Signal::from_control_byte(0x1a), None);
        assert_eq!(Signal::from_control_byte(b'a'), None);
        assert_eq!(Signal::Interrupt.number(), 2);
        assert_eq!(Signal::Kill.number(), 9);
    }

    #[test]
    fn spawning_outside_a_runtime_is_an_error() {
        assert!(matches!(
            ExecProcess::spawn("true", &[]),
            Err(ProcessError::NoRuntime)
        ));
        assert!(matches!(
            PtyProcess::spawn(&PtySpawn::new(vec!["true".into()])),
            Err(ProcessError::NoRuntime)
        ));
    }
}
