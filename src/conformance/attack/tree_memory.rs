//! The resident memory of a process and every process it started,
//! sampled from `/proc` (Linux): what a client under test holds while a
//! bad server plays for it, whatever shell or wrapper started it.

use std::collections::HashMap;

/// Bytes resident in `root` and its descendants now; `None` where `/proc`
/// does not tell (another system, or `root` already gone).
pub(crate) fn resident_bytes(root: u32) -> Option<u64> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut total = None;
    let mut pending = vec![root];
    let mut seen = 0usize;
    while let Some(pid) = pending.pop() {
        seen += 1;
        if seen > 4096 {
            break;
        }
        if let Some(bytes) = resident_of(pid) {
            total = Some(total.unwrap_or(0) + bytes);
        }
        pending.extend(children.get(&pid).into_iter().flatten().copied());
    }
    total
}

/// The parent of `pid`: the field after the command name in its `stat`
/// (the name is in parentheses and may hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// `VmRSS` of `pid`, in bytes.
fn resident_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_shell_counts_with_the_command_it_started() {
        let mut shell = std::process::Command::new("sh").args(["-c", "sleep 2; true"]).spawn().expect("sh runs");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let alone = resident_of(shell.id()).expect("the shell's own memory");
        let tree = resident_bytes(shell.id()).expect("the shell's tree");
        let _ = shell.kill();
        let _ = shell.wait();
        assert!(tree > alone, "the tree ({tree} B) holds the shell ({alone} B) and its sleep");
        assert!(resident_bytes(u32::MAX).is_none(), "no such process");
    }
}
