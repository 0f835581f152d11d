//! `slipway man [--dir DIR]`: manual pages generated from the clap
//! definition (the same text as `--help`).

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;

pub fn run(args: &ManArgs, printer: &Printer) -> Result<(), CliError> {
    let command = Cli::command();
    let Some(dir) = &args.dir else {
        let mut out = Vec::new();
        render(&command, &mut out)?;
        return super::completions::write_stdout(&out);
    };
    fs_err::create_dir_all(dir).map_err(|e| write_failed(dir, &e))?;
    let mut written = Vec::new();
    write_pages(&command, &["slipway"], dir, &mut written)?;
    if printer.json() {
        printer.json_value(&serde_json::json!({ "dir": dir, "pages": written }));
    } else {
        printer.success(&format!(
            "{} manual pages in {} (try `man -l {}`)",
            written.len(),
            dir.display(),
            dir.join("slipway-deploy.1").display()
        ));
    }
    Ok(())
}

/// A page for `command` (at `path` below `slipway`), then one per
/// subcommand, recursively: `slipway-snapshot-restore.1` whose synopsis
/// reads `slipway snapshot restore`, as git and cargo name theirs.
fn write_pages(
    command: &clap::Command,
    path: &[&str],
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<(), CliError> {
    let file = format!("{}.1", path.join("-"));
    let page = command
        .clone()
        .name(path.join("-"))
        .bin_name(path.join(" "));
    let mut out = Vec::new();
    render(&page, &mut out)?;
    let target = dir.join(&file);
    fs_err::write(&target, out).map_err(|e| write_failed(&target, &e))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut sub_path = path.to_vec();
        sub_path.push(sub.get_name());
        write_pages(sub, &sub_path, dir, written)?;
    }
    Ok(())
}

fn render(command: &clap::Command, out: &mut Vec<u8>) -> Result<(), CliError> {
    clap_mangen::Man::new(command.clone())
        .render(out)
        .map_err(|e| CliError::new(Exit::Failed, format!("cannot render the manual page: {e}")))
}

fn write_failed(path: &Path, e: &std::io::Error) -> CliError {
    CliError::new(
        Exit::Failed,
        format!("cannot write {}: {e}", path.display()),
    )
    .hint("pass --dir a directory you may write to")
}
