//! The `e3relax` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    e3relax::runtime::tune_allocator();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming the file and the problem.
            let message = e.to_string().replace('\n', " ");
            eprintln!("e3relax: error: {message}");
            ExitCode::FAILURE
        }
    }
}
