//! Version ordering, classification and requirement matching, per ecosystem. Pure
//! functions over strings; every grammar comes from a maintained crate, not from here:
//!
//! - Cargo: `semver` (Cargo's own crate) for versions and `VersionReq` (`1.2` means `^1.2`);
//! - npm: `nodejs-semver`, a port of node-semver, for versions and ranges (`^1.2 || 2.x`);
//! - Go: `semver` after the `v` prefix (`v1.2.3`, `v2.0.0+incompatible`, pseudo-versions
//!   `v0.0.0-20250127100254-2aa3b3277741` are prereleases); go.mod has no ranges, a
//!   requirement is a minimum within its major (Go's minimal version selection);
//! - PyPI: `pep440_rs` (astral) for PEP 440 versions and specifiers (`>=2.31,<3`, `~=1.4`).
//!
//! A version that its ecosystem's grammar cannot read is never newer, never equal and
//! never proposed: the functions answer `None` (or `true` for [`is_prerelease`]).

use std::cmp::Ordering;
use std::str::FromStr;

use super::{Ecosystem, UpdateType};

/// A parsed version of any ecosystem; only comparable within one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Semver(semver::Version),
    Npm(nodejs_semver::Version),
    Pep440(pep440_rs::Version),
}

fn parse(eco: Ecosystem, v: &str) -> Option<Parsed> {
    let v = v.trim();
    match eco {
        Ecosystem::Cargo => semver::Version::parse(v).ok().map(Parsed::Semver),
        Ecosystem::Go => semver::Version::parse(v.strip_prefix('v')?)
            .ok()
            .map(Parsed::Semver),
        Ecosystem::Npm => nodejs_semver::Version::parse(v).ok().map(Parsed::Npm),
        Ecosystem::Pypi => pep440_rs::Version::from_str(v).ok().map(Parsed::Pep440),
    }
}

/// `major.minor.patch` of a parsed version (PEP 440: the first three release numbers,
/// missing ones 0).
fn triple(p: &Parsed) -> (u64, u64, u64) {
    match p {
        Parsed::Semver(v) => (v.major, v.minor, v.patch),
        Parsed::Npm(v) => (v.major(), v.minor(), v.patch()),
        Parsed::Pep440(v) => {
            let r = v.release();
            let at = |i: usize| r.get(i).copied().unwrap_or(0);
            (at(0), at(1), at(2))
        }
    }
}

fn order(a: &Parsed, b: &Parsed) -> Option<Ordering> {
    match (a, b) {
        // Go and Cargo ignore build metadata when ordering (`+incompatible`).
        (Parsed::Semver(a), Parsed::Semver(b)) => Some(
            (a.major, a.minor, a.patch)
                .cmp(&(b.major, b.minor, b.patch))
                .then_with(|| a.pre.cmp(&b.pre)),
        ),
        (Parsed::Npm(a), Parsed::Npm(b)) => Some(a.cmp(b)),
        (Parsed::Pep440(a), Parsed::Pep440(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Orders two versions of one ecosystem; `None` when either does not parse.
pub fn cmp(eco: Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    order(&parse(eco, a)?, &parse(eco, b)?)
}

/// Whether `v` is a prerelease: semver `-alpha.1` (Go pseudo-versions included), PEP 440
/// `a`/`b`/`rc`/`.dev`. An unreadable version counts as one, so it is never proposed.
pub fn is_prerelease(eco: Ecosystem, v: &str) -> bool {
    match parse(eco, v) {
        Some(Parsed::Semver(v)) => !v.pre.is_empty(),
        Some(Parsed::Npm(v)) => v.is_prerelease(),
        Some(Parsed::Pep440(v)) => v.any_prerelease(),
        None => true,
    }
}

/// Whether `v` parses as a version of `eco`.
pub fn is_valid(eco: Ecosystem, v: &str) -> bool {
    parse(eco, v).is_some()
}

/// How far moving from `from` to `to` goes; `None` when `to` is not newer or either does
/// not parse. For `0.x` a minor move is [`UpdateType::Major`] and a patch move
/// [`UpdateType::Minor`], as caret ranges (`^0.3` = `>=0.3.0,<0.4.0`) treat them; the same
/// rule applies to `0.0.x` (a patch move there is minor, not major).
pub fn update_type(eco: Ecosystem, from: &str, to: &str) -> Option<UpdateType> {
    let (f, t) = (parse(eco, from)?, parse(eco, to)?);
    if order(&t, &f)? != Ordering::Greater {
        return None;
    }
    let ((fa, fi, fp), (ta, ti, tp)) = (triple(&f), triple(&t));
    Some(if fa != ta {
        UpdateType::Major
    } else if fa == 0 {
        if fi != ti {
            UpdateType::Major
        } else if fp != tp {
            UpdateType::Minor
        } else {
            UpdateType::Patch
        }
    } else if fi != ti {
        UpdateType::Minor
    } else {
        UpdateType::Patch
    })
}

/// Whether `version` satisfies the manifest requirement `requirement` as its ecosystem reads
/// it; `None` when either is not understood. An empty requirement allows anything.
///
/// - Cargo: `semver::VersionReq` (`1.2` = `^1.2`, `~1`, `=1.0.3`, `>=1, <3`).
/// - npm: node-semver ranges (`^1.2.0`, `1.x`, `>=1 <2 || 3`); dist-tags (`latest`) and
///   non-registry specs (`file:`, `git+…`) are not understood.
/// - PyPI: PEP 440 specifiers (`>=2.31,<3`, `~=1.4`, `==1.*`); a bare version means `==`.
/// - Go: the requirement is the minimum; `version` satisfies it when it is not older and
///   keeps the major (a `/v2` module path is another module).
pub fn satisfies(eco: Ecosystem, requirement: &str, version: &str) -> Option<bool> {
    let req = requirement.trim();
    let v = parse(eco, version)?;
    match (eco, &v) {
        (Ecosystem::Cargo, Parsed::Semver(v)) => {
            let req = if req.is_empty() { "*" } else { req };
            Some(semver::VersionReq::parse(req).ok()?.matches(v))
        }
        (Ecosystem::Npm, Parsed::Npm(v)) => {
            if req.contains(':') || req.contains('/') {
                return None;
            }
            Some(nodejs_semver::Range::parse(req).ok()?.satisfies(v))
        }
        (Ecosystem::Pypi, Parsed::Pep440(v)) => {
            if req.is_empty() {
                return Some(true);
            }
            let spec = if req.starts_with(|c: char| c.is_ascii_digit()) {
                format!("=={req}")
            } else {
                req.to_string()
            };
            let specs = pep440_rs::VersionSpecifiers::from_str(&spec).ok()?;
            Some(specs.contains(v))
        }
        (Ecosystem::Go, Parsed::Semver(_)) => {
            if req.is_empty() {
                return Some(true);
            }
            let min = parse(eco, req)?;
            Some(order(&v, &min)? != Ordering::Less && triple(&v).0 == triple(&min).0)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ecosystem::*;
    use UpdateType::*;

    #[test]
    fn update_types_follow_caret_semantics() {
        assert_eq!(update_type(Cargo, "1.2.3", "1.2.4"), Some(Patch));
        assert_eq!(update_type(Cargo, "1.2.3", "1.3.0"), Some(Minor));
        assert_eq!(update_type(Cargo, "1.2.3", "2.0.0"), Some(Major));
        assert_eq!(update_type(Cargo, "0.3.1", "0.4.0"), Some(Major));
        assert_eq!(update_type(Cargo, "0.3.1", "0.3.2"), Some(Minor));
        assert_eq!(update_type(Npm, "4.17.20", "4.17.21"), Some(Patch));
        assert_eq!(update_type(Npm, "0.28.0", "0.28.2"), Some(Minor));
        assert_eq!(update_type(Go, "v1.1.0", "v1.2.0"), Some(Minor));
        assert_eq!(update_type(Pypi, "2.31", "2.32.3"), Some(Minor));
        assert_eq!(update_type(Pypi, "2.31.0", "2.31.0.post1"), Some(Patch));
        assert_eq!(update_type(Pypi, "1!1.0", "2.0"), None, "epoch 1 is newer");
    }

    #[test]
    fn not_newer_or_unreadable_is_none() {
        assert_eq!(update_type(Cargo, "1.2.3", "1.2.3"), None);
        assert_eq!(update_type(Cargo, "1.2.3", "1.2.2"), None);
        assert_eq!(update_type(Npm, "1.0.0", "banana"), None);
        assert_eq!(update_type(Go, "1.0.0", "v1.0.1"), None, "Go needs the v");
        assert_eq!(update_type(Cargo, "1.0.0-rc.1", "1.0.0"), Some(Patch));
    }

    #[test]
    fn ordering_per_ecosystem() {
        assert_eq!(cmp(Pypi, "1.0rc1", "1.0"), Some(Ordering::Less));
        assert_eq!(cmp(Pypi, "1.0", "1.0.0"), Some(Ordering::Equal));
        assert_eq!(cmp(Pypi, "1.0.post1", "1.0"), Some(Ordering::Greater));
        assert_eq!(
            cmp(Npm, "1.0.0-beta.2", "1.0.0-beta.11"),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp(Go, "v2.0.0+incompatible", "v2.0.0"),
            Some(Ordering::Equal)
        );
        assert_eq!(cmp(Cargo, "1.10.0", "1.9.0"), Some(Ordering::Greater));
        assert_eq!(cmp(Cargo, "x", "1.9.0"), None);
    }

    #[test]
    fn prereleases() {
        assert!(is_prerelease(Pypi, "2.0b1"));
        assert!(is_prerelease(Pypi, "2.0.dev3"));
        assert!(!is_prerelease(Pypi, "2.0.post1"));
        assert!(is_prerelease(Npm, "5.0.0-next.1"));
        assert!(is_prerelease(Go, "v0.0.0-20250127100254-2aa3b3277741"));
        assert!(!is_prerelease(Go, "v2.0.0+incompatible"));
        assert!(is_prerelease(Cargo, "not a version"));
    }

    #[test]
    fn requirements() {
        assert_eq!(satisfies(Cargo, "1.2", "1.9.0"), Some(true));
        assert_eq!(satisfies(Cargo, "1.2", "2.0.0"), Some(false));
        assert_eq!(satisfies(Cargo, "0.3", "0.4.0"), Some(false));
        assert_eq!(satisfies(Cargo, "=1.0.3", "1.0.4"), Some(false));
        assert_eq!(satisfies(Cargo, "not a req", "1.0.0"), None);
        assert_eq!(satisfies(Npm, "^1.15.6", "1.15.9"), Some(true));
        assert_eq!(satisfies(Npm, "^1.15.6", "2.0.0"), Some(false));
        assert_eq!(satisfies(Npm, "1.x || >=3 <4", "3.2.0"), Some(true));
        assert_eq!(satisfies(Npm, "file:../x", "1.0.0"), None);
        assert_eq!(satisfies(Pypi, ">=2.31,<3", "2.32.3"), Some(true));
        assert_eq!(satisfies(Pypi, ">=2.31,<3", "3.0"), Some(false));
        assert_eq!(satisfies(Pypi, "~=1.4", "1.9"), Some(true));
        assert_eq!(satisfies(Pypi, "", "1.9"), Some(true));
        assert_eq!(satisfies(Pypi, "1.4.2", "1.4.2"), Some(true));
        assert_eq!(satisfies(Pypi, "=>1", "1.4.2"), None);
        assert_eq!(satisfies(Go, "v1.2.0", "v1.3.0"), Some(true));
        assert_eq!(satisfies(Go, "v1.2.0", "v1.1.0"), Some(false));
        assert_eq!(satisfies(Go, "v1.2.0", "v2.0.0+incompatible"), Some(false));
    }
}
