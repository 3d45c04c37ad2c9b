//! `completions SHELL` and `man`: generated from the same clap definition as the parser,
//! so they can never disagree with the flags the binary accepts.

use std::io::Write;

use clap::CommandFactory;

use crate::args::Cli;

const BIN: &str = "asana-docspace";

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut out);
    out.flush()?;
    Ok(crate::exit::OK)
}

/// The page `man asana-docspace` shows once installed as `man1/asana-docspace.1`: the
/// global options, every subcommand with its summary, the version and the exit codes.
pub fn man() -> anyhow::Result<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command().name(BIN)).render(&mut page)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(crate::exit::OK)
}
