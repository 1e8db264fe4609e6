//! What of the host's `/etc` a bwrap sandbox sees: an allowlist, bound read-only, links
//! recreated as links.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::sandbox::{HOME, WORKSPACE};

/// What of the host's `/etc` a sandbox sees: what the toolchains need to run (users and
/// groups for name lookups, name resolution, TLS roots, the dynamic linker, time zone, MIME
/// and protocol tables, Debian's alternatives, Python's and Perl's and Java's own
/// configuration), nothing else. Left out on purpose: keys and credentials (`ssh`,
/// `ssl/private`, `shadow`), package-manager and git configuration that may carry tokens
/// (`pip.conf`, `npmrc`, `gitconfig`, `maven/settings.xml`, `postgresql-common`'s
/// `pg_service.conf`), shell start-up files where operators export variables (`environment`,
/// `profile`, `bash.bashrc`), the host's identity (`machine-id`), and every other file an
/// operator may have put secrets in. A name ending in `*` takes every entry starting with the rest.
pub const ETC_ALLOWLIST: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "resolv.conf",
    "nsswitch.conf",
    "gai.conf",
    "networks",
    "protocols",
    "services",
    "rpc",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "locale.alias",
    "mime.types",
    "magic",
    "magic.mime",
    "os-release",
    "debian_version",
    "lsb-release",
    "shells",
    "terminfo",
    "inputrc",
    "fonts",
    "xml",
    "sgml",
    "perl",
    "python3*",
    "java-*",
    "mtab",
];

/// Adds the [`ETC_ALLOWLIST`] entries present on this host: a symlink is recreated as the
/// same symlink (never resolved on the host side), anything else is bound read-only.
pub(super) fn etc_allowlist(cmd: &mut Command) {
    for entry in etc_entries(Path::new("/etc")) {
        let target = entry.display().to_string();
        match std::fs::read_link(&entry) {
            Ok(link) => {
                cmd.args(["--symlink", &link.display().to_string(), &target]);
            }
            Err(_) => {
                cmd.args(["--ro-bind-try", &target, &target]);
            }
        }
    }
}

/// The paths under `etc` that [`ETC_ALLOWLIST`] names and that exist, sorted.
pub(super) fn etc_entries(etc: &Path) -> Vec<PathBuf> {
    let names: Vec<String> = std::fs::read_dir(etc)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for allowed in ETC_ALLOWLIST {
        match allowed.strip_suffix('*') {
            Some(prefix) => out.extend(
                names
                    .iter()
                    .filter(|n| n.starts_with(prefix))
                    .map(|n| etc.join(n)),
            ),
            None => {
                let p = etc.join(allowed);
                if std::fs::symlink_metadata(&p).is_ok() {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The ancestors of `targets` that bwrap would have to create in its own root (so not `/`,
/// and nothing inside the work tree or the home, which are binds of host directories),
/// shallowest first.
pub(super) fn parent_dirs(targets: &[String]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for t in targets {
        let mut p = Path::new(t).parent();
        while let Some(dir) = p {
            let inside_bind = [WORKSPACE, HOME].iter().any(|b| dir.starts_with(b));
            if dir != Path::new("/") && !inside_bind {
                out.insert(dir.display().to_string());
            }
            p = dir.parent();
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by_key(|d| d.matches('/').count());
    v
}
