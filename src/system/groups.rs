//! The site groups named in the configuration, as group ids of this machine.

use std::collections::HashMap;
use std::path::Path;

use crate::core::config::Config;
use crate::core::finess::Finess;

/// Site groups by FINESS. An unknown group is a configuration error: every one is reported,
/// with its key and the file.
pub fn resolve(config: &Config, file: &Path) -> Result<HashMap<Finess, u32>, Vec<String>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let Some(name) = &site.group else { continue };
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => {
                out.insert(site.finess.clone(), g.gid.as_raw());
            }
            Ok(None) => errors.push(format!(
                "{}: site[{i}].group: no group {name:?} on this machine",
                file.display()
            )),
            Err(e) => errors.push(format!(
                "{}: site[{i}].group: cannot look up {name:?}: {e}",
                file.display()
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
