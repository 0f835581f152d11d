//! Finding `deploy/config/deployment.yml` from the current directory upwards,
//! as cargo finds `Cargo.toml`.

use std::path::{Path, PathBuf};

/// Where the configuration sits inside a repository.
pub const CONFIG_RELATIVE: &str = "deploy/config/deployment.yml";

/// The nearest `deploy/config/deployment.yml` at or above `start`.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_RELATIVE))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_upwards_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join(CONFIG_RELATIVE);
        fs_err::create_dir_all(cfg.parent().unwrap()).unwrap();
        fs_err::write(&cfg, "app: {}\n").unwrap();
        let deep = dir.path().join("src/a/b");
        fs_err::create_dir_all(&deep).unwrap();
        assert_eq!(find_config(&deep), Some(cfg));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(find_config(other.path()), None);
    }
}
