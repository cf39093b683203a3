//! Checksum sidecar files (`app-1.0.jar.sha1`, `maven-metadata.xml.sha256`): which algorithms a
//! Maven repository publishes beside a file, and reading the checksum one holds.

/// A checksum file published beside another file, named by appending the algorithm's extension.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Sidecar {
    Sha1,
    Md5,
    Sha256,
    Sha512,
}

impl Sidecar {
    /// Every sidecar a Maven client may ask for, the ones Maven asks by default first.
    pub const ALL: [Sidecar; 4] = [Sidecar::Sha1, Sidecar::Md5, Sidecar::Sha256, Sidecar::Sha512];

    /// The file extension without the dot: `sha1`, `md5`, `sha256`, `sha512`.
    pub fn extension(self) -> &'static str {
        match self {
            Sidecar::Sha1 => "sha1",
            Sidecar::Md5 => "md5",
            Sidecar::Sha256 => "sha256",
            Sidecar::Sha512 => "sha512",
        }
    }

    /// The digest algorithm's name as the rest of depproxy spells it (the same words as the
    /// extensions).
    pub fn algorithm(self) -> &'static str {
        self.extension()
    }

    /// How many hex digits the digest has.
    pub fn hex_len(self) -> usize {
        match self {
            Sidecar::Sha1 => 40,
            Sidecar::Md5 => 32,
            Sidecar::Sha256 => 64,
            Sidecar::Sha512 => 128,
        }
    }

    /// The sidecar a file name's last extension names (`app.jar.sha1` → `Sha1`), with the name of
    /// the file it belongs to. Extensions are matched as Maven writes them, in lowercase.
    pub fn split(file: &str) -> Option<(&str, Sidecar)> {
        let (base, extension) = file.rsplit_once('.')?;
        let sidecar = Sidecar::ALL.into_iter().find(|sidecar| sidecar.extension() == extension)?;
        Some((base, sidecar))
    }
}

/// The hex checksum a sidecar file holds: its first whitespace-separated token (files are `hex` or
/// `hex  filename`), checked to be hex of the algorithm's length, lowercased; `None` when it is not.
pub fn sidecar_checksum(body: &[u8], sidecar: Sidecar) -> Option<String> {
    let token = body.split(u8::is_ascii_whitespace).find(|token| !token.is_empty())?;
    if token.len() != sidecar.hex_len() || !token.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // All ASCII hex digits, so one byte is one char.
    Some(token.iter().map(|byte| char::from(byte.to_ascii_lowercase())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    #[test]
    fn names() {
        for (sidecar, extension, len) in [
            (Sidecar::Sha1, "sha1", 40),
            (Sidecar::Md5, "md5", 32),
            (Sidecar::Sha256, "sha256", 64),
            (Sidecar::Sha512, "sha512", 128),
        ] {
            assert_eq!(sidecar.extension(), extension);
            assert_eq!(sidecar.algorithm(), extension);
            assert_eq!(sidecar.hex_len(), len);
            assert_eq!(Sidecar::split(&format!("a.jar.{extension}")), Some(("a.jar", sidecar)));
        }
        assert_eq!(Sidecar::split("a.jar"), None);
        assert_eq!(Sidecar::split("a.jar.SHA1"), None);
        assert_eq!(Sidecar::split("sha1"), None);
    }

    #[test]
    fn checksums() {
        assert_eq!(sidecar_checksum(SHA1.as_bytes(), Sidecar::Sha1).as_deref(), Some(SHA1));
        let with_name = format!("{}  app-1.0.jar\n", SHA1.to_uppercase());
        assert_eq!(sidecar_checksum(with_name.as_bytes(), Sidecar::Sha1).as_deref(), Some(SHA1));
        let padded = format!("\r\n\t {SHA1}\r\n");
        assert_eq!(sidecar_checksum(padded.as_bytes(), Sidecar::Sha1).as_deref(), Some(SHA1));
        assert_eq!(sidecar_checksum(SHA1.as_bytes(), Sidecar::Md5), None);
        assert_eq!(sidecar_checksum(SHA1.as_bytes(), Sidecar::Sha256), None);
        assert_eq!(sidecar_checksum(b"", Sidecar::Sha1), None);
        assert_eq!(sidecar_checksum(b"   \n", Sidecar::Sha1), None);
        let not_hex = SHA1.replace('d', "g");
        assert_eq!(sidecar_checksum(not_hex.as_bytes(), Sidecar::Sha1), None);
        // The openssl style puts the file name first: not what a repository publishes.
        let openssl = format!("SHA1(app-1.0.jar)= {SHA1}");
        assert_eq!(sidecar_checksum(openssl.as_bytes(), Sidecar::Sha1), None);
        assert_eq!(sidecar_checksum(&[0xff, 0xfe], Sidecar::Md5), None);
    }
}
