//! The `strata` binary: argument parsing and dispatch live in the library.

fn main() -> std::process::ExitCode {
    strata_frontend::cli::main()
}
