//! `check-config`: every error of the file at once (exit 2), then what this machine lacks.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::config_file::{self, LoadError};
use crate::core::config::Source;
use crate::source::imap::tls;

pub fn run(path: &Path) -> ExitCode {
    match config_file::load(path) {
        Ok(config) => {
            let warnings = config_file::environment_warnings(&config, path);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            // The files that are here are read exactly as `run` reads them.
            if let Source::Imap(imap) = &config.source
                && warnings.is_empty()
            {
                let errors = tls::check(imap, Timestamp::now());
                if !errors.is_empty() {
                    eprintln!(
                        "{} error{} in the files {} names:",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" },
                        path.display()
                    );
                    for e in errors {
                        eprintln!("  {}: {e}", path.display());
                    }
                    return super::config_error();
                }
            }
            println!(
                "{}: configuration is valid ({} site{})",
                path.display(),
                config.sites.len(),
                if config.sites.len() == 1 { "" } else { "s" }
            );
            print!("{}", folders(&config));
            ExitCode::SUCCESS
        }
        Err(e @ LoadError::Read(..)) => {
            eprintln!("error: {e}");
            super::config_error()
        }
        Err(LoadError::Invalid(errors)) => {
            eprintln!(
                "{} error{} in {}:",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            for e in errors {
                eprintln!("  {e}");
            }
            super::config_error()
        }
    }
}

/// What the service will make of the folders: their group and modes, as staff will see them.
fn folders(config: &crate::core::config::Config) -> String {
    use crate::spool::{FILE_MODE, PARENT_MODE, PRIVATE_DIR_MODE, SITE_DIR_MODE};
    let mut out = String::new();
    let mut shared: Vec<&std::path::Path> = Vec::new();
    for site in &config.sites {
        let group = site.group.as_deref().unwrap_or("the service's own group");
        for (what, dir) in [("spool", &site.spool), ("sil", &site.sil)] {
            let Some(dir) = dir else { continue };
            out.push_str(&format!(
                "  site {} ({}): {what} {} — folders {:04o} and files {:04o}, group {group}\n",
                site.finess,
                site.name,
                dir.display(),
                SITE_DIR_MODE,
                FILE_MODE
            ));
            if let Some(parent) = dir.parent()
                && !shared.contains(&parent)
            {
                shared.push(parent);
            }
        }
    }
    for parent in shared {
        out.push_str(&format!(
            "  {}: made {:04o} with the service's group if missing (never a site's)\n",
            parent.display(),
            PARENT_MODE
        ));
    }
    out.push_str(&format!(
        "  quarantine {}: folder {:04o}, files {:04o}, the service's group\n",
        config.quarantine_dir.display(),
        PRIVATE_DIR_MODE,
        FILE_MODE
    ));
    out
}
