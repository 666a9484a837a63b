//! The `strata` binary: argument parsing and dispatch live in the library.

/// glibc's allocator serialises threads that free what others allocated (a
/// message body is allocated by the request that publishes it and freed by
/// whichever thread evicts it from the tail cache); mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    strata_frontend::cli::main()
}

/// Transparent huge pages make the first touch of fresh memory zero 2 MiB
/// at once: a tenth of a publishing node's CPU went to that, mostly under
/// uploads that touch a little of many fresh pages (docs/benchmarks.md,
/// "Transparent huge pages off"). Best effort: a kernel without the
/// setting leaves them as they are.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only
    // changes this process's (and its children's) paging policy.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
