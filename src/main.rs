//! The `e3relax` command-line tool.

mod cli;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;

/// The message of a failed write to standard output (`println!` panics with
/// "failed printing to stdout: ..."), kept by the panic hook for `main`.
static STDOUT_FAILURE: Mutex<Option<String>> = Mutex::new(None);

const STDOUT_PANIC: &str = "failed printing to stdout: ";

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => e.exit(),
        Err(e) => {
            // --help and --version: printed here, so that a failed write
            // is an error instead of exit 0.
            let text = e.render().to_string();
            let mut out = std::io::stdout().lock();
            return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => stdout_failed(&error.to_string()),
            };
        }
    };
    e3relax::runtime::tune_allocator();
    // SIGTERM, SIGINT, SIGHUP: outputs stay all-or-nothing.
    e3relax::io::output::clean_up_on_termination();
    // A write to stdout that fails (a full disk, a closed pipe) makes
    // `println!` panic: the hook keeps its message instead of printing a
    // panic report, and the run unwinds (removing its temporary files).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        match message.strip_prefix(STDOUT_PANIC) {
            Some(reason) => {
                *STDOUT_FAILURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string())
            }
            None => default_hook(info),
        }
    }));
    let result = catch_unwind(AssertUnwindSafe(|| cli::run(args)));
    let flushed = std::io::stdout().flush();
    match result {
        Ok(Ok(())) => match flushed {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => stdout_failed(&error.to_string()),
        },
        Ok(Err(e)) => {
            // One line, naming the file and the problem.
            let message = e.to_string().replace('\n', " ");
            eprintln!("e3relax: error: {message}");
            ExitCode::FAILURE
        }
        Err(panic) => {
            let failure = STDOUT_FAILURE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            match failure {
                Some(reason) => stdout_failed(&reason),
                None => std::panic::resume_unwind(panic),
            }
        }
    }
}

/// Standard output could not be written: one line and exit 1; a closed
/// pipe (`e3relax info X | head -1`) ends quietly, as other Unix tools do.
fn stdout_failed(reason: &str) -> ExitCode {
    if !reason.contains("Broken pipe") {
        eprintln!("e3relax: error: cannot write to standard output: {reason}");
    }
    ExitCode::FAILURE
}
