//! A real process under a pseudo-terminal, as the agent runs `sh` for
//! Standard_Stream and `sh -c <command>` for InteractiveCommands.
//!
//! [`PtyProcess::split`] gives three independent pieces: [`PtyOutput`] (an
//! `AsyncRead` of everything the process writes to the terminal, ending with
//! EOF once every holder of the terminal has exited), [`PtyInput`] (an
//! `AsyncWrite` of keyboard input) and [`PtyControl`] (resize, signal, kill,
//! wait), each movable to its own task.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use pty_process::{OwnedReadPty, OwnedWritePty, Pty, Size};
use rustix::termios::Winsize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ProcessControl, ProcessError, RunAsUser, Signal, require_runtime};

/// What to run under a pseudo-terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtySpawn {
    /// Program and arguments; the program is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Extra environment, applied last (on top of the inherited environment
    /// and the agent's `TERM`/`LANG` defaults).
    pub env: Vec<(String, String)>,
    /// Initial terminal width in columns.
    pub cols: u16,
    /// Initial terminal height in rows.
    pub rows: u16,
    /// Working directory; the simulator's own when `None`.
    pub cwd: Option<PathBuf>,
    /// The OS user to run as (Run As); the simulator's own when `None`.
    pub user: Option<RunAsUser>,
}

impl PtySpawn {
    /// Runs `argv` on an 80×24 terminal with no extra environment.
    pub fn new(argv: Vec<String>) -> Self {
        Self {
            argv,
            env: Vec::new(),
            cols: 80,
            rows: 24,
            cwd: None,
            user: None,
        }
    }

    /// The Standard_Stream shell: `sh`.
    pub fn shell() -> Self {
        Self::new(vec!["sh".to_owned()])
    }

    /// An InteractiveCommands session: `sh -c <command>`.
    pub fn interactive_command(command: &str) -> Self {
        Self::new(shell_command_argv(command))
    }
}

/// The argv the agent uses to run a command string: `sh -c <command>`.
pub fn shell_command_argv(command: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()]
}

/// A process running on the slave side of a fresh pseudo-terminal, as its
/// session leader with the terminal as its controlling tty.
pub struct PtyProcess {
    /// The master side: output to read, input to write.
    pty: Pty,
    /// Resize, signal, kill, wait.
    control: PtyControl,
}

impl PtyProcess {
    /// Allocates a terminal of `spec.cols`×`spec.rows` and starts
    /// `spec.argv` on it, with `TERM=xterm-256color` and, if the simulator's
    /// environment has no `LANG`, `LANG=C.UTF-8` (like the agent), then
    /// `spec.env`. Must be called inside a tokio runtime.
    pub fn spawn(spec: &PtySpawn) -> Result<PtyProcess, ProcessError> {
        require_runtime()?;
        let (program, args) = spec.argv.split_first().ok_or(ProcessError::EmptyCommand)?;
        let (pty, pts) = pty_process::open().map_err(ProcessError::Pty)?;
        pty.resize(Size::new(spec.rows, spec.cols))
            .map_err(ProcessError::Pty)?;
        // A second handle on the master for the control side (resize and
        // foreground-group signals) so it does not contend with I/O.
        let master = pty
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| ProcessError::Pty(pty_process::Error::Io(e)))?;

        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).env("TERM", "xterm-256color");
        let lang_set =
            std::env::var_os("LANG").is_some() || spec.env.iter().any(|(k, _)| k == "LANG");
        if !lang_set {
            cmd.env("LANG", "C.UTF-8");
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        if let Some(user) = &spec.user {
            user.apply(&mut cmd);
        }
        // Reached only if the reaper task is torn down with the runtime.
        cmd.kill_on_drop(true);

        let child = pty_process::Command::from(cmd)
            .spawn(pts)
            .map_err(|e| match e {
                pty_process::Error::Io(source) => ProcessError::Spawn {
                    program: program.clone(),
                    source,
                },
                other => ProcessError::Pty(other),
            })?;
        let process = ProcessControl::adopt(child, program, Some(master))?;
        Ok(PtyProcess {
            pty,
            control: PtyControl { process },
        })
    }

    /// The control handle (clone it to keep one beyond [`split`](Self::split)).
    pub fn control(&self) -> &PtyControl {
        &self.control
    }

    /// Splits into output, input and control, each usable from its own task.
    pub fn split(self) -> (PtyOutput, PtyInput, PtyControl) {
        let (read, write) = self.pty.into_split();
        (
            PtyOutput {
                inner: read,
                eof: false,
            },
            PtyInput { inner: write },
            self.control,
        )
    }
}

/// Everything the process writes to its terminal (stdout and stderr
/// interleaved, with the terminal's echo and CR/LF translation).
///
/// Linux reports a master whose slave side has been closed by every holder
/// with `EIO`; this reader returns the bytes still buffered and then EOF
/// instead. A background job that keeps the terminal open delays EOF until
/// it exits too.
#[derive(Debug)]
pub struct PtyOutput {
    inner: OwnedReadPty,
    /// Set at the first `EIO`, so later reads stay at EOF.
    eof: bool,
}

impl AsyncRead for PtyOutput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.eof {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                self.eof = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Keyboard input to the process. Bytes pass through the terminal's line
/// discipline, so `0x03` raises SIGINT in the foreground job and `\r` ends a
/// line, exactly as typing would.
#[derive(Debug)]
pub struct PtyInput {
    inner: OwnedWritePty,
}

impl AsyncWrite for PtyInput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resize, signal, kill and wait for a PTY process; cloneable and usable from
/// any task while others pump output and input. Dropping the last clone kills
/// the process if it still runs.
#[derive(Debug, Clone)]
pub struct PtyControl {
    process: ProcessControl,
}

impl PtyControl {
    /// Sets the terminal size (the process gets SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), ProcessError> {
        let master = self
            .process
            .inner
            .tty
            .as_ref()
            .ok_or_else(|| ProcessError::Resize(io::Error::other("no terminal")))?;
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(master, size).map_err(|e| ProcessError::Resize(e.into()))
    }

    /// Waits for the process to exit: its exit code, or `128 + signal`.
    pub async fn wait(&self) -> Result<i32, ProcessError> {
        self.process.wait().await
    }

    /// The exit code if the process has already exited.
    pub fn try_exit_code(&self) -> Option<i32> {
        self.process.try_exit_code()
    }

    /// Sends `signal` to the terminal's foreground job and to the process's
    /// own group.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        self.process.signal(signal)
    }

    /// Kills the process, its group and the terminal's foreground job with
    /// SIGKILL.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.process.kill()
    }

    /// The process id (also its session and process group id).
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// The underlying process handle.
    pub fn process(&self) -> &ProcessControl {
        &self.process
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::default_signal_actions_for_children;
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(5);

    /// Reads until EOF (bounded by `LIMIT`).
    async fn read_all(mut out: PtyOutput) -> String {
        let mut buf = Vec::new();
        timeout(LIMIT, out.read_to_end(&mut buf))
            .await
            .expect("PTY output did not reach EOF in time")
            .expect("PTY read failed");
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn shell_runs_commands_and_reports_exit_code() {
        let proc = PtyProcess::spawn(&PtySpawn::new(argv(&["/bin/sh"]))).unwrap();
        let (out, mut input, ctl) = proc.split();
        input.write_all(b"echo hello; exit 3\n").await.unwrap();
        let text = read_all(out).await;
        // The echoed command line says "hello;", the output line "hello\r\n".
        assert!(text.contains("hello\r\n"), "output: {text:?}");
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 3);
        assert_eq!(ctl.try_exit_code(), Some(3));
    }

    #[tokio::test]
    async fn output_buffered_before_exit_is_read_after_exit() {
        let spec = PtySpawn::interactive_command("printf 'abc\\n'; exit 7");
        let proc = PtyProcess::spawn(&spec).unwrap();
        let (out, _input, ctl) = proc.split();
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 7);
        assert_eq!(read_all(out).await, "abc\r\n");
    }

    #[tokio::test]
    async fn environment_and_cwd_like_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = PtySpawn::interactive_command("echo \"$TERM|$SIM_VAR|$(pwd)\"");
        spec.env.push(("SIM_VAR".into(), "x y".into()));
        spec.cwd = Some(dir.path().canonicalize().unwrap());
        let (out, _input, ctl) = PtyProcess::spawn(&spec).unwrap().split();
        let text = read_all(out).await;
        let want = format!(
            "xterm-256color|x y|{}\r\n",
            dir.path().canonicalize().unwrap().display()
        );
        assert_eq!(text, want);
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn resize_from_another_task_is_seen_by_stty() {
        let mut spec = PtySpawn::shell();
        spec.cols = 80;
        spec.rows = 24;
        let (out, mut input, ctl) = PtyProcess::spawn(&spec).unwrap().split();
        let reader = tokio::spawn(read_all(out));
        let resizer = ctl.clone();
        tokio::spawn(async move { resizer.resize(100, 40) })
            .await
            .unwrap()
            .unwrap();
        input.write_all(b"stty size; exit\n").await.unwrap();
        let text = reader.await.unwrap();
        assert!(text.contains("40 100"), "output: {text:?}");
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn kill_ends_a_sleeping_foreground_job_promptly() {
        let (mut out, mut input, ctl) = PtyProcess::spawn(&PtySpawn::shell()).unwrap().split();
        input.write_all(b"sleep 100\n").await.unwrap();
        // Wait until the shell has echoed the line, then give it a moment to
        // start the job.
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("sleep 100") {
            let n = timeout(LIMIT, out.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "EOF before the echo");
            seen.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ctl.try_exit_code(), None);
        ctl.kill().unwrap();
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 128 + 9);
        // The job died too, so the terminal closes.
        read_all(out).await;
    }

    #[tokio::test]
    async fn dropping_the_control_kills_the_process() {
        let proc = PtyProcess::spawn(&PtySpawn::new(argv(&["sleep", "100"]))).unwrap();
        let (out, _input, ctl) = proc.split();
        drop(ctl);
        read_all(out).await;
    }

    #[tokio::test]
    async fn interrupt_reaches_the_foreground_job() {
        default_signal_actions_for_children();
        let spec = PtySpawn::interactive_command("sleep 100");
        let (out, _input, ctl) = PtyProcess::spawn(&spec).unwrap().split();
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.signal(Signal::Interrupt).unwrap();
        assert_eq!(timeout(LIMIT, ctl.wait()).await.unwrap().unwrap(), 128 + 2);
        read_all(out).await;
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = PtyProcess::spawn(&PtySpawn::new(argv(&["/nonexistent/prog"])))
            .err()
            .unwrap();
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err}");
        let err = PtyProcess::spawn(&PtySpawn::new(Vec::new())).err().unwrap();
        assert!(matches!(err, ProcessError::EmptyCommand));
    }
}
