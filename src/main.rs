//! The `cutover` command: parse the command line, hand over to the library.

use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates many small,
/// short-lived objects (Pingora's sessions, headers, futures), and glibc's
/// allocator spent a tenth of the proxy's CPU on them in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc reads its options when the process starts, before `main`. Its
/// default commits arena memory eagerly, which with a runtime per thread
/// costs ~9 MB of resident memory for nothing; committing on use keeps an
/// idle proxy small. So the process re-executes itself once with the option
/// set (same pid, same arguments).
fn lazy_commit() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // On success exec does not return; on failure carry on as we are.
    let _ = std::process::Command::new(exe)
        .args(args)
        .env(VAR, "0")
        .exec();
}

fn main() {
    lazy_commit();
    let cli = cutover::cli::Cli::parse();
    std::process::exit(cutover::cli::main(cli));
}
