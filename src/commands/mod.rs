//! One module per command: each reads its inputs, calls the core or the shell, prints, and
//! returns an exit status. Errors that reach `main` are runtime failures (exit 1).

pub mod audit;
pub mod check_config;
pub mod cli;
pub mod inspect;
pub mod purge;
pub mod quarantine;
pub mod reload;
pub mod status;

use std::process::ExitCode;

use crate::core::config::Config;

/// Exit status for a configuration or usage error.
pub fn config_error() -> ExitCode {
    ExitCode::from(2)
}

/// Loads the configuration for a command that reads or writes the installation; run as
/// root, the command then acts as the service account that owns it (`operator::act_as_owner`),
/// with `groups` as supplementary groups. Errors are printed; the exit status is returned.
pub fn load_as_owner(
    path: &std::path::Path,
    groups: impl FnOnce(&Config) -> Result<Vec<u32>, String>,
) -> Result<Config, ExitCode> {
    let config = match crate::system::config_file::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Err(config_error());
        }
    };
    let groups = match groups(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return Err(config_error());
        }
    };
    if let Err(e) = crate::system::operator::act_as_owner(&config.state_dir, &groups) {
        eprintln!("error: {e}");
        return Err(ExitCode::FAILURE);
    }
    Ok(config)
}

/// No supplementary groups needed.
pub fn no_groups(_: &Config) -> Result<Vec<u32>, String> {
    Ok(Vec::new())
}

/// The manual page, with a section per command, from the clap definitions.
pub fn man() -> ExitCode {
    use clap::CommandFactory;
    let cmd = crate::commands::cli::Cli::command();
    let mut out: Vec<u8> = Vec::new();
    let mut render = || -> std::io::Result<()> {
        clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("mss-dispatch {}", sub.get_name());
            out.extend(format!(".SH \"{}\"\n", name.to_uppercase()).bytes());
            let page = clap_mangen::Man::new(sub.clone().bin_name(name));
            page.render_synopsis_section(&mut out)?;
            page.render_description_section(&mut out)?;
            page.render_options_section(&mut out)?;
            page.render_subcommands_section(&mut out)?;
            page.render_extra_section(&mut out)?;
        }
        Ok(())
    };
    match render() {
        Ok(()) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
