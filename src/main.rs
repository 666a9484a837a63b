//! The `strata` binary: argument parsing and dispatch live in the library.

/// glibc's allocator serialises threads that free what others allocated (a
/// message body is allocated by the request that publishes it and freed by
/// whichever thread evicts it from the tail cache); mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    strata_frontend::cli::main()
}
