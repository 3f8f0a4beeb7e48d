//! Real Unix users and groups for one test (as root), removed when it ends.

use std::process::Command;

use super::stderr;

/// Users and groups made for one test, removed when it ends (even when it fails).
pub struct Accounts {
    suffix: String,
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    pub fn new() -> Accounts {
        Accounts {
            suffix: format!("{}", std::process::id() % 100_000),
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn group(&mut self, name: &str) -> String {
        let g = format!("mssd-{name}-{}", self.suffix);
        let out = Command::new("groupadd").arg(&g).output().unwrap();
        assert!(out.status.success(), "groupadd: {}", stderr(&out));
        self.groups.push(g.clone());
        g
    }

    /// A user whose primary group is `group`, also in `others`.
    pub fn user(&mut self, name: &str, group: &str, others: &[String]) -> String {
        let u = format!("mssd-{name}-{}", self.suffix);
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .args(["--gid", group]);
        if !others.is_empty() {
            cmd.args(["--groups", &others.join(",")]);
        }
        let out = cmd.arg(&u).output().unwrap();
        assert!(out.status.success(), "useradd: {}", stderr(&out));
        self.users.push(u.clone());
        u
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}
