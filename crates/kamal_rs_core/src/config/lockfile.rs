//! The app's own Kamal, as its `Gemfile.lock` locks it: the lockfile of `BUNDLE_GEMFILE` (the one
//! `bundle exec` runs with), else the working directory's. When it locks `kamal`, that version says
//! which Kamal the config is for (a 1.x or a 2.x reading), whatever its keys suggest. Bundler writes
//! each locked gem as `    <name> (<version>[-<platform>])` under a source's `specs:`.

use std::path::{Path, PathBuf};

use super::gem_version::GemVersion;
use super::KamalMajor;

/// The Kamal releases kamal_rs behaves as: 2.12.0 for 2.x configs, 1.9.3 for 1.x.
pub const KAMAL_2: &str = "2.12.0";
pub const KAMAL_1: &str = "1.9.3";

#[derive(Clone, Debug, PartialEq)]
pub enum Locked {
    /// No lockfile, or none that locks `kamal`: the config's keys say which Kamal.
    Nothing,
    /// The lockfile locks this version of `kamal`.
    Kamal { version: String, path: PathBuf },
    /// The lockfile could not be read as one (why): the config's keys say which Kamal, and a deploy
    /// says so first.
    Unreadable { path: PathBuf, why: String },
}

/// The app's lockfile: `BUNDLE_GEMFILE`'s (`Gemfile` → `Gemfile.lock`, `gems.rb` → `gems.locked`),
/// else `Gemfile.lock` in `dir`.
pub fn path(bundle_gemfile: Option<&str>, dir: &Path) -> PathBuf {
    match bundle_gemfile.filter(|g| !g.is_empty()) {
        Some(gemfile) if gemfile.ends_with("gems.rb") => PathBuf::from(format!(
            "{}gems.locked",
            gemfile.trim_end_matches("gems.rb")
        )),
        Some(gemfile) => PathBuf::from(format!("{gemfile}.lock")),
        None => dir.join("Gemfile.lock"),
    }
}

/// The app's lockfile as this process finds it (`BUNDLE_GEMFILE`, the working directory), read.
pub fn for_app() -> Locked {
    let gemfile = std::env::var("BUNDLE_GEMFILE").ok();
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    read(&path(gemfile.as_deref(), &dir))
}

pub fn read(path: &Path) -> Locked {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Locked::Nothing;
    };
    match locked_kamal(&text) {
        Ok(Some(version)) => Locked::Kamal {
            version,
            path: path.to_path_buf(),
        },
        Ok(None) => Locked::Nothing,
        Err(why) => Locked::Unreadable {
            path: path.to_path_buf(),
            why,
        },
    }
}

/// The version of `kamal` a lockfile locks; an error when the text is not a lockfile Bundler could
/// use (merge conflict markers, no sections, a `kamal` line without a version).
pub fn locked_kamal(text: &str) -> Result<Option<String>, String> {
    const SECTIONS: [&str; 8] = [
        "GEM",
        "GIT",
        "PATH",
        "PLUGIN SOURCE",
        "PLATFORMS",
        "DEPENDENCIES",
        "RUBY VERSION",
        "BUNDLED WITH",
    ];
    if let Some(n) = text
        .lines()
        .position(|l| l.starts_with("<<<<<<<") || l.starts_with(">>>>>>>"))
    {
        return Err(format!("line {}: a merge conflict marker", n + 1));
    }
    if !text.lines().any(|l| SECTIONS.contains(&l.trim_end())) {
        return Err("no GEM or DEPENDENCIES section: not a Gemfile.lock".into());
    }
    for (n, line) in text.lines().enumerate() {
        let Some(spec) = line.strip_prefix("    kamal (") else {
            continue;
        };
        let Some(version) = spec.strip_suffix(')') else {
            return Err(format!("line {}: {line:?} is not a locked gem", n + 1));
        };
        // A platform suffix (`-x86_64-linux`) is not part of the version; kamal has none.
        if GemVersion::parse(version).is_err() {
            return Err(format!(
                "line {}: kamal's version {version:?} is not a version",
                n + 1
            ));
        }
        return Ok(Some(version.to_string()));
    }
    Ok(None)
}

/// The Kamal a locked version means: 2 and later read as 2.x (2.12.0's rules), earlier as 1.x.
pub fn major(version: &str) -> KamalMajor {
    let first = version
        .split('.')
        .next()
        .unwrap_or("")
        .parse::<u64>()
        .unwrap_or(0);
    if first >= 2 {
        KamalMajor::V2
    } else {
        KamalMajor::V1
    }
}

/// What a deploy says first about the app's locked Kamal, when it is not the release kamal_rs
/// behaves as (or could not be read).
pub fn note(locked: &Locked) -> Option<String> {
    match locked {
        Locked::Nothing => None,
        Locked::Unreadable { path, why } => Some(format!(
            "{} could not be read ({why}): which Kamal the config is for is read from its keys (README: \"Which Kamal a config is for\")",
            path.display()
        )),
        Locked::Kamal { version, path } => {
            let target = match major(version) {
                KamalMajor::V2 => KAMAL_2,
                KamalMajor::V1 => KAMAL_1,
            };
            let (locked, ours) = (GemVersion::parse(version).ok()?, GemVersion::parse(target).ok()?);
            let newer = match locked.cmp_version(&ours) {
                std::cmp::Ordering::Equal => return None,
                std::cmp::Ordering::Greater => ", and knows nothing newer",
                std::cmp::Ordering::Less => "",
            };
            Some(format!(
                "{} locks kamal {version}: kamal_rs deploys as Kamal {target} does{newer} (README: \"Which Kamal a config is for\")",
                path.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK_2: &str = "GEM\n  remote: https://rubygems.org/\n  specs:\n    bcrypt_pbkdf (1.1.1)\n    kamal (2.5.3)\n      activesupport (>= 7.0)\n    zeitwerk (2.7.1)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  kamal\n\nBUNDLED WITH\n   2.5.22\n";

    #[test]
    fn locked_2x_1x_none_and_unreadable() {
        assert_eq!(locked_kamal(LOCK_2), Ok(Some("2.5.3".into())));
        assert_eq!(
            locked_kamal(&LOCK_2.replace("kamal (2.5.3)", "kamal (1.9.2)")),
            Ok(Some("1.9.2".into()))
        );
        // A Rails app without kamal, and kamal only as a dependency name, not a locked spec.
        assert_eq!(
            locked_kamal(
                "GEM\n  specs:\n    rails (8.0.1)\n      kamal (>= 2)\n\nDEPENDENCIES\n  rails\n"
            ),
            Ok(None)
        );
        assert!(locked_kamal("<<<<<<< HEAD\nGEM\n")
            .unwrap_err()
            .contains("merge conflict"));
        assert!(locked_kamal("just text\n")
            .unwrap_err()
            .contains("not a Gemfile.lock"));
        assert!(locked_kamal("GEM\n  specs:\n    kamal (two)\n")
            .unwrap_err()
            .contains("is not a version"));
    }

    /// The locked major decides over the keys: without `builder.arch`, a locked Kamal 2 gets Kamal
    /// 2.12's error where the keys alone would read an early 1.x config; a locked 1.x reads `proxy`-less
    /// keys as 1.9.3 does.
    #[test]
    fn the_locked_major_decides() {
        use crate::config::{Configuration, LoadOptions};
        use crate::test_support::value;
        let early = value(
            &serde_json::json!({"service": "app", "image": "app", "servers": ["1.1.1.1"],
                                               "registry": {"username": "u", "password": "p"}}),
        );
        let load = |locked: Locked| {
            Configuration::load(
                std::slice::from_ref(&early),
                LoadOptions {
                    version: Some("v1".into()),
                    locked,
                    ..LoadOptions::default()
                },
            )
        };
        let by_keys = load(Locked::Nothing).unwrap();
        assert_eq!(
            (by_keys.major, by_keys.v1_by_elimination),
            (KamalMajor::V1, true)
        );
        let at = |v: &str| Locked::Kamal {
            version: v.into(),
            path: "/app/Gemfile.lock".into(),
        };
        let e = load(at("2.12.0")).unwrap_err();
        assert_eq!(e.message, "builder: Builder arch not set");
        let v1 = load(at("1.9.3")).unwrap();
        assert_eq!((v1.major, v1.v1_by_elimination), (KamalMajor::V1, false));
        let unreadable = Locked::Unreadable {
            path: "/app/Gemfile.lock".into(),
            why: "x".into(),
        };
        assert_eq!(
            load(unreadable).unwrap().major,
            KamalMajor::V1,
            "the keys decide"
        );
    }

    #[test]
    fn the_lockfile_is_the_bundles() {
        let dir = Path::new("/app");
        assert_eq!(path(None, dir), PathBuf::from("/app/Gemfile.lock"));
        assert_eq!(
            path(Some("/x/Gemfile"), dir),
            PathBuf::from("/x/Gemfile.lock")
        );
        assert_eq!(
            path(Some("/x/gems.rb"), dir),
            PathBuf::from("/x/gems.locked")
        );
        assert_eq!(
            read(Path::new("/nonexistent/Gemfile.lock")),
            Locked::Nothing
        );
    }

    #[test]
    fn a_locked_release_other_than_ours_is_named() {
        let at = |v: &str| Locked::Kamal {
            version: v.into(),
            path: "/app/Gemfile.lock".into(),
        };
        assert_eq!(major("2.5.3"), KamalMajor::V2);
        assert_eq!(major("1.9.2"), KamalMajor::V1);
        assert_eq!(major("0.16.1"), KamalMajor::V1);
        assert_eq!(note(&at("2.12.0")), None);
        assert_eq!(note(&at("1.9.3")), None);
        assert_eq!(
            note(&at("2.5.3")).unwrap(),
            "/app/Gemfile.lock locks kamal 2.5.3: kamal_rs deploys as Kamal 2.12.0 does (README: \"Which Kamal a config is for\")"
        );
        assert!(note(&at("1.8.0"))
            .unwrap()
            .contains("deploys as Kamal 1.9.3 does"));
        assert!(note(&at("2.13.0")).unwrap().contains("knows nothing newer"));
        let unreadable = Locked::Unreadable {
            path: "/app/Gemfile.lock".into(),
            why: "line 3: a merge conflict marker".into(),
        };
        assert!(note(&unreadable)
            .unwrap()
            .starts_with("/app/Gemfile.lock could not be read (line 3"));
    }
}
