//! Who this process is (host name and pid), as recorded on what it leaves
//! on an engine (the deploy lock, a one-off migrate container), and whether
//! a recorded owner is a process of this machine that no longer runs: the
//! one case where the next command may settle its leftovers at once.

/// This machine's name (`/etc/hostname`, else `localhost`).
pub fn hostname() -> String {
    fs_err::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process `pid` of machine `host` is known to be gone: it was
/// a process of this machine and `/proc/<pid>` is no more. A process of
/// another machine is never known to be gone from here.
pub fn is_gone(host: &str, pid: u32) -> bool {
    host == hostname() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_of_this_machine_is_gone() {
        assert!(!is_gone(&hostname(), std::process::id()));
        // Above the kernel's pid_max (at most 2^22): never a live process.
        assert!(is_gone(&hostname(), 4_194_305));
        assert!(!is_gone("some-other-machine.invalid", 4_194_305));
    }
}
