//! The seed's dynamic inventory, usable by Ansible as is: `ansible -i` a one-line wrapper of
//! `kos inventory` reaches every node with the user, key, known_hosts and host-key names kos
//! itself uses (no key or option given to Ansible by hand), and runs a command as root there.

use super::Ctx;
use crate::support;
use std::process::Command;

pub(crate) fn check(ctx: &Ctx) {
    let ansible = support::tool("ansible").expect("ansible (ansible-core) from scripts/install-test-tools.sh");
    let wrapper = ctx.c.dir.path().join("inventory.sh");
    let kos = assert_cmd::cargo::cargo_bin("kos");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} inventory \"$@\"\n", kos.display())).expect("wrapper written");
    Command::new("chmod").arg("755").arg(&wrapper).status().expect("chmod");
    let out = Command::new(&ansible)
        .current_dir(ctx.c.dir.path())
        .env("KOS_SETTINGS", ctx.c.dir.path().join("settings.yaml"))
        .env("HOME", ctx.c.home())
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_NOCOLOR", "1")
        .arg("-i")
        .arg(&wrapper)
        .args(["all", "--become", "-m", "raw", "-a", "id -un; hostname"])
        .output()
        .expect("ansible runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ansible through kos inventory:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for node in ctx.status.keys() {
        assert!(stdout.contains(&format!("{node} | CHANGED | rc=0")), "{node} answered:\n{stdout}");
    }
    assert_eq!(stdout.lines().filter(|l| l.trim() == "root").count(), ctx.status.len(), "root on every node:\n{stdout}");
}
