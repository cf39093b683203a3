//! What CLI commands print. A reader that goes away (`depproxy admin events | head -1`) ends the
//! output quietly, as it does for other command-line tools, instead of the panic of `println!`.

use std::io::Write as _;

/// Writes `text` and a newline to stdout. A closed pipe is not an error: whoever read it has
/// what they wanted.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write to stdout")),
    }
}

/// Writes `text` and a newline to stderr: advice next to a command's output. Lost when stderr
/// is gone, which is no reason to fail the command.
pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}").and_then(|()| err.flush());
}
