//! The project a distribution file belongs to, read from its name (wheel and sdist naming rules),
//! so a file asked for before its project page can find the page that publishes its checksum.

use crate::name::{ProjectName, normalize};

/// The normalized project of a distribution file name (or of its `.metadata`):
/// - wheels `{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl` → `dist`;
/// - sdists and eggs (`.tar.gz`, `.zip`, `.tar.bz2`, `.tgz`, `.egg`) → the part before the last `-`
///   that is followed by a digit (`{name}-{version}`, `{name}-{version}-py3.8.egg`).
///
/// `None` when the name follows neither rule or the project part is not a valid project name.
pub fn project_of_filename(filename: &str) -> Option<String> {
    let (project, _) = split_filename(filename)?;
    ProjectName::parse(project).ok().map(|_| normalize(project))
}

/// The version a distribution file's name carries (or its `.metadata`'s): a wheel's second field
/// (`{name}-{version}-…whl`), an sdist's or egg's text after its name (`{name}-{version}.tar.gz`,
/// `{name}-{version}-py3.8.egg`). `None` when the name follows neither rule.
pub fn version_of_filename(filename: &str) -> Option<String> {
    let (project, version) = split_filename(filename)?;
    ProjectName::parse(project).ok().map(|_| version.to_owned())
}

/// A distribution file name's project and version parts, as written, by the wheel and sdist
/// naming rules.
fn split_filename(filename: &str) -> Option<(&str, &str)> {
    let filename = filename.strip_suffix(".metadata").unwrap_or(filename);
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".whl") {
        let stem = &filename[..filename.len() - ".whl".len()];
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) || parts.iter().any(|part| part.is_empty()) {
            return None;
        }
        return Some((parts[0], parts[1]));
    }
    let extension = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".egg"]
        .into_iter()
        .find(|extension| lower.ends_with(extension))?;
    let stem = &filename[..filename.len() - extension.len()];
    let split = stem
        .char_indices()
        .filter(|&(index, c)| {
            c == '-' && stem[index + 1..].chars().next().is_some_and(|next| next.is_ascii_digit())
        })
        .map(|(index, _)| index)
        .next_back()?;
    let version = &stem[split + 1..];
    // An egg names its Python after the version: `foo-1.0-py3.8.egg`.
    let version = if extension == ".egg" { version.split('-').next().unwrap_or(version) } else { version };
    Some((&stem[..split], version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wheels() {
        for (file, project) in [
            ("requests-2.32.3-py3-none-any.whl", "requests"),
            ("typing_extensions-4.12.2-py3-none-any.whl", "typing-extensions"),
            ("Django-5.0.6-py3-none-any.whl", "django"),
            ("numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "numpy"),
            ("foo-1.0-1build-py3-none-any.whl", "foo"),
            ("zope.interface-6.4-cp311-cp311-macosx_11_0_arm64.whl", "zope-interface"),
            ("foo-1.0-py3-none-any.whl.metadata", "foo"),
            ("FOO-1.0-py3-none-any.WHL", "foo"),
        ] {
            assert_eq!(project_of_filename(file).as_deref(), Some(project), "{file}");
        }
        for bad in [
            "foo-1.0.whl",
            "foo-1.0-py3-none.whl",
            "a-b-c-d-e-f-g.whl",
            "-1.0-py3-none-any.whl",
            "foo--py3-none-any.whl",
        ] {
            assert_eq!(project_of_filename(bad), None, "{bad}");
        }
    }

    #[test]
    fn sdists_and_eggs() {
        for (file, project) in [
            ("requests-2.32.3.tar.gz", "requests"),
            ("python-dateutil-2.9.0.post0.tar.gz", "python-dateutil"),
            ("Flask_Login-0.6.3.zip", "flask-login"),
            ("foo-bar-1.0.tar.bz2", "foo-bar"),
            ("foo-1.0.tgz", "foo"),
            ("foo-1.0-py3.8.egg", "foo"),
            ("backports.zoneinfo-0.2.1.tar.gz", "backports-zoneinfo"),
            ("foo-1.0.tar.gz.metadata", "foo"),
            ("py3-1.0.tar.gz", "py3"),
        ] {
            assert_eq!(project_of_filename(file).as_deref(), Some(project), "{file}");
        }
        for bad in [
            "foo.tar.gz",
            "foo-bar.tar.gz",
            "-1.0.tar.gz",
            "foo-1.0.txt",
            "foo-1.0",
            ".tar.gz",
            "foo_-1.0.tar.gz",
        ] {
            assert_eq!(project_of_filename(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions() {
        for (file, version) in [
            ("requests-2.32.3-py3-none-any.whl", "2.32.3"),
            ("foo-1.0-1build-py3-none-any.whl", "1.0"),
            ("foo-1.0-py3-none-any.whl.metadata", "1.0"),
            ("requests-2.32.3.tar.gz", "2.32.3"),
            ("python-dateutil-2.9.0.post0.tar.gz", "2.9.0.post0"),
            ("zope.interface-6.0.zip", "6.0"),
            ("foo-1.0.tar.gz.metadata", "1.0"),
        ] {
            assert_eq!(version_of_filename(file).as_deref(), Some(version), "{file}");
        }
        for bad in ["foo.tar.gz", "foo-1.0.whl", "foo-1.0.txt"] {
            assert_eq!(version_of_filename(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn sdist_names_round_trip(
            name in "[A-Za-z][A-Za-z0-9._-]{0,20}[A-Za-z]",
            version in "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}",
        ) {
            prop_assume!(!name.contains("-0") && !name.chars().zip(name.chars().skip(1)).any(|(a, b)| a == '-' && b.is_ascii_digit()));
            let file = format!("{name}-{version}.tar.gz");
            prop_assert_eq!(project_of_filename(&file), Some(normalize(&name)));
            let wheel = format!("{}-{version}-py3-none-any.whl", name.replace('-', "_"));
            prop_assert_eq!(project_of_filename(&wheel), Some(normalize(&name)));
        }

        #[test]
        fn never_panics(file in "\\PC{0,40}") {
            let _ = project_of_filename(&file);
        }
    }
}
